"""The CLI contract: init, serve, --help, --version; refusals with clear messages."""

from __future__ import annotations

import os
import signal
import stat
import subprocess

import requests
from cryptography import x509

from redfish_racklet import __version__
from redfish_racklet.store import Store

from .conftest import cli, free_port, start_server


def run(*args, **kw):
    return subprocess.run(cli() + list(args), capture_output=True, text=True, timeout=60, **kw)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    for sub in ("init", "serve"):
        assert sub in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"redfish-racklet {__version__}"
    r = run("serve", "--help")
    for opt in ("--state-dir", "--bind", "--port", "--manifest", "--workers", "--sse-port",
                "--require-client-cert", "--metrics-port", "--metrics-bind", "--metrics-client-cert"):
        assert opt in r.stdout


def test_serve_refuses_bad_numbers(tmp_path):
    for args in (("--sse-port", "70000"), ("--sse-port", "-1"), ("--metrics-port", "70000"),
                 ("--metrics-port", "-1"), ("--port", "0"), ("--workers", "0")):
        r = run("serve", "--state-dir", str(tmp_path / "s"), *args)
        assert r.returncode == 2 and r.stderr.strip(), args
        assert not (tmp_path / "s").exists()  # refused before anything was made


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_init_generates_password_and_keys(tmp_path):
    state = tmp_path / "st"
    r = run("init", "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    pw_file = state / "admin-password"
    assert str(pw_file) in r.stdout
    password = pw_file.read_text().strip()
    assert len(password) >= 20
    assert mode(pw_file) == 0o600
    assert mode(state / "server-key.pem") == 0o600
    assert mode(state) == 0o700
    ca = x509.load_pem_x509_certificate((state / "ca.pem").read_bytes())
    srv = x509.load_pem_x509_certificate((state / "server.pem").read_bytes())
    assert srv.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    accounts = Store(str(state / "racklet.db")).accounts()
    assert [(a["username"], a["role_id"]) for a in accounts] == [("admin", "Administrator")]
    assert password not in accounts[0]["password_hash"]
    # a second init refuses rather than replacing the rack's identity
    r2 = run("init", "--state-dir", str(state))
    assert r2.returncode != 0 and "already" in r2.stderr
    assert pw_file.read_text().strip() == password


def test_two_inits_make_different_passwords_and_cas(tmp_path):
    for d in ("a", "b"):
        assert run("init", "--state-dir", str(tmp_path / d)).returncode == 0
    assert (tmp_path / "a/admin-password").read_text() != (tmp_path / "b/admin-password").read_text()
    assert (tmp_path / "a/ca.pem").read_bytes() != (tmp_path / "b/ca.pem").read_bytes()


def test_init_refuses_weak_password_file(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("short\n")
    r = run("init", "--state-dir", str(tmp_path / "st"), "--admin-password-file", str(pw))
    assert r.returncode == 2 and "refused" in r.stderr
    assert not (tmp_path / "st" / "racklet.db").exists()


def test_bad_manifest_names_file_path_and_reason(tmp_path):
    bad = tmp_path / "rack.yaml"
    bad.write_text("rack: {name: R, driver: sim}\nunits:\n  - {id: Unit1, slot: 1}\n  - {id: Unit2, slot: 12}\n")
    r = run("serve", "--state-dir", str(tmp_path / "st"), "--manifest", str(bad), "--port", str(free_port()))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "units[1].slot" in r.stderr and "line 4" in r.stderr
    assert "12" in r.stderr
    assert not (tmp_path / "st").exists()


def test_duplicate_unit_ids_refused(tmp_path):
    bad = tmp_path / "rack.yaml"
    bad.write_text("rack: {name: R, driver: sim}\nunits:\n  - {id: Unit1, slot: 1}\n  - {id: Unit1, slot: 2}\n")
    r = run("serve", "--state-dir", str(tmp_path / "st"), "--manifest", str(bad))
    assert r.returncode == 2 and "units[1].id" in r.stderr and "already used" in r.stderr


def test_invalid_yaml_refused(tmp_path):
    bad = tmp_path / "rack.yaml"
    bad.write_text("rack: {name: R\n")
    r = run("serve", "--state-dir", str(tmp_path / "st"), "--manifest", str(bad))
    assert r.returncode == 2 and "not valid YAML" in r.stderr


def test_serve_inits_new_dir_logs_address_and_stops_on_sigint(tmp_path):
    state = tmp_path / "st"
    port = free_port()
    # its own process group, as a shell gives a command: Ctrl-C signals the whole group
    proc = subprocess.Popen(cli() + ["serve", "--state-dir", str(state), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, process_group=0)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        assert any(f"https://127.0.0.1:{port}" in ln for ln in lines), lines
        assert (state / "admin-password").exists()
        r = requests.get(f"https://127.0.0.1:{port}/redfish/v1", verify=str(state / "ca.pem"), timeout=5)
        assert r.status_code == 200
        os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C at the terminal does
        assert proc.wait(20) == 0
        assert not (state / "agent.sock").exists()  # the agent went down with it
        rest = proc.stdout.read()
        assert "starting a new one" not in rest, rest  # stopped, not mistaken for a crash
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_second_serve_on_same_state_dir_refuses(tmp_path):
    first = start_server(tmp_path / "one", workers=1)
    try:
        r = run("serve", "--state-dir", str(first.state_dir), "--port", str(free_port()))
        assert r.returncode == 1
        assert "already running" in r.stderr and str(first.state_dir) in r.stderr
        assert first.get("/redfish/v1/Systems").status_code == 200  # the first one is unharmed
    finally:
        assert first.stop() == 0


def test_metrics_dirs_left_by_a_killed_serve_are_removed_at_the_next_start(tmp_path):
    """serve's private metrics directory (/dev/shm) is named after its pid; a serve killed
    with -9 cannot remove its own, so the next one removes those whose serve is gone."""
    from redfish_racklet.server import MULTIPROC_PREFIX, remove_stale_multiproc_dirs
    gone = subprocess.Popen(["true"])
    gone.wait()                                    # a pid with no process now
    stale = tmp_path / f"{MULTIPROC_PREFIX}{gone.pid}-x1"
    stale.mkdir()
    (stale / "histogram_1.db").write_bytes(b"\0" * 64)
    alive = tmp_path / f"{MULTIPROC_PREFIX}{os.getpid()}-x2"    # a running serve's
    alive.mkdir()
    unrelated = [tmp_path / "something-else", tmp_path / f"{MULTIPROC_PREFIX}nopid"]
    for d in unrelated:
        d.mkdir()
    assert remove_stale_multiproc_dirs(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and alive.exists() and all(d.exists() for d in unrelated)
