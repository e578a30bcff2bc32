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
    tmp = tmp_path_factory.mktemp("referee")
    srv = start_server(tmp, manifest_text=None)  # the default rack
    with_an_update(srv, tmp)
    yield srv
    srv.stop()


def with_an_update(srv, tmp) -> None:
    """A trusted key and one finished update, so the referees see a Task, a staged
    history and signing keys, not an empty UpdateService."""
    import json

    from .conftest import cli, wait_for
    run = lambda *a: subprocess.run(cli() + list(a), check=True, capture_output=True)  # noqa: E731
    (tmp / "payload").write_bytes(b"racklet-sim bmc firmware 1.1.0\n")
    run("bundle", "keygen", "--out", str(tmp / "keys"))
    run("keys", "add", str(tmp / "keys" / "signing-key.pub.pem"), "--state-dir", str(srv.state_dir))
    run("bundle", "create", str(tmp / "payload"), "--out", str(tmp / "b.rkb"), "--component", "bmc",
        "--compatible", "racklet-sim", "--version", "1.1.0", "--security-version", "1")
    run("bundle", "sign", str(tmp / "b.rkb"), "--key", str(tmp / "keys" / "signing-key.pem"))
    c = srv.client()
    with open(tmp / "b.rkb", "rb") as f:
        r = c.post(srv.url + "/redfish/v1/UpdateService/update-multipart", files={
            "UpdateParameters": (None, json.dumps({"Targets": ["/redfish/v1/Managers/Unit1-BMC"]}),
                                 "application/json"),
            "UpdateFile": ("b.rkb", f, "application/octet-stream")})
    assert r.status_code == 202, r.text
    wait_for(lambda: c.get(srv.url + r.headers["Location"]).status_code == 200, "the update task", timeout=30)


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
