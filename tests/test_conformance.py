"""The DMTF referees against a live server on loopback, offline.

Runs ../shared/tools/redfish-conformance (which keeps everything on loopback: SSDP
discovery off, event destinations rewritten to 127.0.0.1). Any failure fails the suite.
"""

from __future__ import annotations

import csv
import os
import subprocess

import pytest

from .conftest import shared_or_skip


@pytest.fixture(scope="module")
def referee_server(tmp_path_factory):
    from .conftest import start_server
    srv = start_server(tmp_path_factory.mktemp("referee"), manifest_text=None)  # the default rack
    yield srv
    srv.stop()


def run_conformance(server, tools: str, outdir, venv) -> dict[str, dict]:
    script = shared_or_skip("tools", "redfish-conformance")
    env = dict(os.environ, CONF_VENV=str(venv), CONF_TOOLS=tools, CONF_UCC_SLEEP_SCALE="0.1")
    r = subprocess.run(["bash", str(script), server.url, "admin", server.password, str(outdir)],
                       env=env, capture_output=True, text=True, timeout=3000)
    print(r.stdout[-4000:], r.stderr[-2000:])
    with open(outdir / "summary.tsv") as f:
        rows = {row["tool"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert rows, r.stdout
    return rows


def failures(outdir) -> str:
    p = outdir / "failure-messages.tsv"
    return p.read_text() if p.exists() else ""


def test_service_and_protocol_validators_pass(referee_server, tools_venv, tmp_path):
    rows = run_conformance(referee_server, "service protocol", tmp_path, tools_venv)
    assert set(rows) == {"service", "protocol"}
    for tool, row in rows.items():
        assert row["status"] == "ok", (tool, row)
        assert int(row["pass"]) > 100, (tool, row)
        assert int(row["fail"]) == 0, failures(tmp_path)


def test_use_case_checkers(referee_server, tools_venv, tmp_path):
    """Every checker passes, account management included."""
    rows = run_conformance(referee_server, "usecases", tmp_path, tools_venv)
    row = rows["usecases"]
    assert row["status"] == "ok" and int(row["pass"]) > 50, row
    assert int(row["fail"]) == 0, failures(tmp_path)


def test_interop_validator_with_the_ocp_profiles(referee_server, tools_venv, tmp_path):
    """The OCP Baseline and OCP Server hardware-management profiles, zero failures."""
    shared_or_skip("redfish", "profiles", "OCPServerHardwareManagement.v1_1_0.json")
    rows = run_conformance(referee_server, "interop", tmp_path, tools_venv)
    assert {t for t in rows} == {"interop[OCPBaselineHardwareManagement]", "interop[OCPServerHardwareManagement]"}
    for tool, row in rows.items():
        assert row["status"] == "ok", (tool, row)
        assert int(row["pass"]) > 50, (tool, row)
        assert int(row["fail"]) == 0, failures(tmp_path)
