"""``redfish-racklet install``: set the service up under systemd on a Debian / Raspberry Pi OS RMC.

The steps are the ones docs/deployment.md lists for doing it by hand: the ``racklet``
system user and the ``i2c``/``gpio`` groups, udev rules giving those groups the devices,
/etc/redfish-racklet (manifest, gunicorn.conf.py), the state directory (``init``), the
units in /etc/systemd/system, enabled. Each step is a description plus an action, so
``--dry-run`` prints exactly what a real run would do.

``--root DIR`` installs into another filesystem root (an image being built, or a test's
temporary directory): files go under DIR, but what needs the running system -- users,
ownership, ``systemctl`` -- is left out (and said so); units are enabled with the same
symlinks ``systemctl enable`` makes.

Nothing the administrator owns is overwritten: an existing state directory is kept as it
is (never re-initialised), and existing files in /etc/redfish-racklet are left alone. The
units are ours and are rewritten on each run (an upgrade); local changes to them belong
in drop-ins (``systemctl edit``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

USER = "racklet"
DEVICE_GROUPS = ("i2c", "gpio")
STATE_DIR = "/var/lib/redfish-racklet"
ETC_DIR = "/etc/redfish-racklet"
UNIT_DIR = "/etc/systemd/system"
UDEV_RULES = "/etc/udev/rules.d/60-redfish-racklet.rules"
TARGET = "redfish-racklet.target"
SERVICES = ("redfish-racklet-agent.service", "redfish-racklet-api.service",
            "redfish-racklet-sse.service", "redfish-racklet-metrics.service")
UNIT_PREFIX = "/opt/redfish-racklet"   # where the shipped units expect the virtualenv
DEFAULT_MANIFEST = "sim-5.yaml"        # redfish_racklet/manifests/: the simulated rack

# Raspberry Pi OS ships equivalent rules; plain Debian leaves the devices root-only.
UDEV_TEXT = """\
# redfish-racklet: the rack agent (group i2c / gpio) may use the I2C buses and GPIO chips.
SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
"""


class InstallError(Exception):
    pass


@dataclass
class Step:
    what: str                       # printed, in dry runs too
    action: Callable[[], None] | None = None  # None: nothing to do here (said why in ``what``)


def source_deploy_dir() -> Path:
    """The units and gunicorn.conf.py shipped with this package (redfish_racklet/deploy: in a
    checkout a link to the top-level deploy/, in an installed wheel a copy of its files)."""
    return Path(__file__).parent / "deploy"


def unit_text(path: Path, prefix: str) -> str:
    """A shipped unit, its programs pointed at the virtualenv ``prefix``."""
    return path.read_text(encoding="utf-8").replace(UNIT_PREFIX + "/bin/", prefix.rstrip("/") + "/bin/")


def wanted_by(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "WantedBy":
            out += value.split()
    return out


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise InstallError(f"{' '.join(cmd)} failed: {r.stderr.strip() or r.returncode}")


def _exists(kind: str, name: str) -> bool:
    return subprocess.run(["getent", kind, name], capture_output=True).returncode == 0


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _state_dir_check(state: Path) -> str:
    """'new', 'keep' (an initialised state directory), or InstallError (something else is there)."""
    from .cli import is_initialized

    if not state.exists():
        return "new"
    if is_initialized(str(state)):
        return "keep"
    if state.is_dir() and not any(state.iterdir()):
        return "new"
    raise InstallError(f"{state} exists but is not a redfish-racklet state directory; "
                       "move it away (nothing was changed)")


def plan(root: str = "/", prefix: str | None = None, manifest: str | None = None,
         admin_password_file: str | None = None, deploy: Path | None = None) -> list[Step]:
    """The steps of an install into ``root``; raises InstallError before doing anything if
    one of them cannot work."""
    from . import cli

    live = os.path.realpath(root) == "/"
    top = Path(root)
    prefix = os.path.abspath(prefix or sys.prefix)
    deploy = deploy or source_deploy_dir()
    for name in (TARGET, *SERVICES):
        if not (deploy / "systemd" / name).is_file():
            raise InstallError(f"{deploy / 'systemd' / name} is missing: reinstall redfish-racklet, "
                               "or give --deploy-dir")
    if not (deploy / "gunicorn.conf.py").is_file():
        raise InstallError(f"{deploy / 'gunicorn.conf.py'} is missing")
    if manifest:
        from .manifest import ManifestError, load
        try:
            load(manifest)
        except ManifestError as e:
            raise InstallError(str(e)) from None
    manifest_src = Path(manifest) if manifest else Path(__file__).parent / "manifests" / DEFAULT_MANIFEST
    if not os.path.exists(os.path.join(prefix, "bin", "gunicorn")):
        raise InstallError(f"{prefix}/bin/gunicorn is missing: install redfish-racklet into that virtualenv first")
    if prefix.startswith(("/home/", "/root/")):
        raise InstallError(f"the units run with ProtectHome=yes and cannot use {prefix}; "
                           "make the virtualenv under /opt (e.g. /opt/redfish-racklet)")
    state = top / STATE_DIR.lstrip("/")
    state_is = _state_dir_check(state)
    etc = top / ETC_DIR.lstrip("/")
    units = top / UNIT_DIR.lstrip("/")
    steps: list[Step] = []

    # users and groups
    for group in (USER, *DEVICE_GROUPS):
        if not live:
            steps.append(Step(f"skip (--root): create system group {group!r} if missing"))
        elif _exists("group", group):
            steps.append(Step(f"group {group!r} exists"))
        else:
            steps.append(Step(f"create system group {group!r}", lambda g=group: _run("groupadd", "--system", g)))
    if not live:
        steps.append(Step(f"skip (--root): create system user {USER!r} (home {STATE_DIR}, no login)"))
    elif _exists("passwd", USER):
        steps.append(Step(f"user {USER!r} exists"))
    else:
        steps.append(Step(f"create system user {USER!r} (home {STATE_DIR}, no login)", lambda: _run(
            "useradd", "--system", "--gid", USER, "--home-dir", STATE_DIR, "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--comment", "redfish-racklet service", USER)))

    # udev rules and /etc/redfish-racklet: the administrator's once written
    rules = top / UDEV_RULES.lstrip("/")
    for path, make, mode in (
            (rules, lambda: UDEV_TEXT, 0o644),
            (etc / "manifest.yaml", lambda: manifest_src.read_text(encoding="utf-8"), 0o644),
            (etc / "gunicorn.conf.py", lambda: (deploy / "gunicorn.conf.py").read_text(encoding="utf-8"), 0o644)):
        if path.exists():
            steps.append(Step(f"keep {path} (exists)"))
        else:
            source = manifest_src if path.name == "manifest.yaml" else ""
            steps.append(Step(f"write {path}" + (f" (from {source})" if source else ""),
                              lambda p=path, m=make, mo=mode: _write(p, m(), mo)))
    if live:
        steps.append(Step("udevadm trigger (the devices get their groups now)",
                          lambda: _run("udevadm", "trigger", "--subsystem-match=i2c-dev", "--subsystem-match=gpio")))

    # the state directory: made once, never touched again
    if state_is == "keep":
        steps.append(Step(f"keep the state directory {state} (initialised; never overwritten)"))
    else:
        def make_state():
            if cli.init(str(state), admin_password_file):
                raise InstallError(f"init of {state} failed")
        steps.append(Step(f"initialise the state directory {state} (0700): CA, certificates, store, admin "
                          f"account{'' if admin_password_file else ' (password in ' + str(state / cli.PASSWORD_FILE) + ')'}",
                          make_state))
        if live:
            steps.append(Step(f"chown -R {USER}:{USER} {state}", lambda: _run("chown", "-R", f"{USER}:{USER}", str(state))))
        else:
            steps.append(Step(f"skip (--root): chown -R {USER}:{USER} {state}"))

    # the units, enabled
    for name in (TARGET, *SERVICES):
        text = unit_text(deploy / "systemd" / name, prefix)
        steps.append(Step(f"write {units / name}" + (f" (programs from {prefix}/bin)" if name != TARGET else ""),
                          lambda n=name, t=text: _write(units / n, t, 0o644)))
    if live:
        steps.append(Step("systemctl daemon-reload", lambda: _run("systemctl", "daemon-reload")))
        steps.append(Step(f"systemctl enable {TARGET} {' '.join(SERVICES)}",
                          lambda: _run("systemctl", "enable", TARGET, *SERVICES)))
    else:
        for name in (TARGET, *SERVICES):
            for want in wanted_by((deploy / "systemd" / name).read_text(encoding="utf-8")):
                link = units / f"{want}.wants" / name
                steps.append(Step(f"enable: {link} -> {UNIT_DIR}/{name}",
                                  lambda lk=link, n=name: _symlink(lk, f"{UNIT_DIR}/{n}")))
    return steps


def _symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def install(root: str = "/", prefix: str | None = None, manifest: str | None = None,
            admin_password_file: str | None = None, dry_run: bool = False,
            deploy: str | None = None) -> int:
    live = os.path.realpath(root) == "/"
    if live and not dry_run and os.geteuid() != 0:
        print("redfish-racklet install: run it as root (sudo), or give --root DIR or --dry-run", file=sys.stderr)
        return 1
    if live and not dry_run and not shutil.which("systemctl"):
        print("redfish-racklet install: systemctl is missing: this is not a systemd system", file=sys.stderr)
        return 1
    try:
        steps = plan(root, prefix, manifest, admin_password_file, Path(deploy) if deploy else None)
        for step in steps:
            print(("would: " if dry_run and step.action else "") + step.what)
            if step.action and not dry_run:
                step.action()
    except InstallError as e:
        print(f"redfish-racklet install: {e}", file=sys.stderr)
        return 1
    if not dry_run:
        start = "systemctl start redfish-racklet.target" if live else \
            f"boot the system of {root}; the service starts with multi-user.target"
        print(f"redfish-racklet: installed; {start}; logs: journalctl -u 'redfish-racklet-*'")
    return 0
