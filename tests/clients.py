"""Running real Redfish clients against a live server: the DMTF redfish-utilities scripts
(with TLS verified against the rack's CA) and the environment every client process gets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Server

CLIENT_SECONDS = 120.0     # bound on one client run (an update client includes the update)
TOOLS = Path(sys.prefix) / "bin"

# Runs a DMTF script with the rack's CA: ``python -c LAUNCHER CA SCRIPT ARGS...``.
LAUNCHER = """
import functools, runpy, sys
import redfish
ca, script = sys.argv[1], sys.argv[2]
sys.argv = [script] + sys.argv[3:]
redfish.redfish_client = functools.partial(redfish.redfish_client, cafile=ca)
runpy.run_path(script, run_name="__main__")
"""


def client_env() -> dict[str, str]:
    """The environment for client processes: no proxy may sit between them and 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    return env


def dmtf_script(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.skip(f"{name} (DMTF redfish-utilities) is not installed: pip install redfish-utilities")
    return path


def run_dmtf(server: Server, script: Path, *args: str, cwd: Path, ca: str | None = None
             ) -> subprocess.CompletedProcess:
    """Run a DMTF script against the rack with TLS verified against ``ca`` (the rack's CA
    by default)."""
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, ca or server.ca, str(script),
         "-u", "admin", "-p", server.password, "-r", server.url, *args],
        capture_output=True, text=True, timeout=CLIENT_SECONDS, cwd=cwd, env=client_env())
