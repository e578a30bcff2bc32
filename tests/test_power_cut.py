"""Power loss: the service runs in a VM on a disk of its own, the power is cut in the
middle of a stream of changes, and every change it acknowledged is on the disk after.

A kill -9 (tests/test_faults.py) keeps the kernel's page cache; a power cut does not.
So here the state directory is on an ext4 disk image the VM sees as a virtio disk with
a volatile write cache (tools/vm/vm.py ``run(disk=...)``). QEMU's ``blklogwrites`` logs
every write and flush the disk receives; the VM runs ``redfish-racklet serve`` and a
client that sends changes (AssetTags, accounts, the lockout threshold) and prints each
acknowledgement on the console (tools/vm/guest_powercut.py). At the seeded-random
acknowledgement the host kills QEMU (SIGKILL: the next change is in flight). From the
log it rebuilds what the disk can hold after a power cut (tools/vm/writelog.py): every
write up to the last completed flush, and then (a second image) also a random subset of
the writes after it, as a disk's cache may have written some. On each image: ext4's
journal is replayed and ``e2fsck -fn`` finds nothing; the store passes
``PRAGMA integrity_check``; ``redfish-racklet serve`` starts on it, on the host, and
shows every acknowledged change (or a change sent after it, whose answer the cut took).

Needs what tests/test_kernel_vm.py needs (QEMU, busybox-static, Debian's kernel fetched
with apt-get download) and e2fsprogs; not KVM: where KVM does not work it runs emulated
(TCG), about 35 s. ``RACKLET_POWERCUT_SEED=N`` replays a run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .conftest import ADMIN_PASSWORD, Server, cli, free_port, wait_until_up

VM_DIR = Path(__file__).resolve().parent.parent / "tools" / "vm"
DEFAULT_SEED = 20261128
STEPS = 15
IMAGE_MB = 96

ACCOUNT_PASSWORD = "power-cut-password-1"
# Slow ticks: under emulation the agent must not eat the one CPU
MANIFEST = """\
rack: {name: Power-cut rack, driver: sim, seed: 3, tick_seconds: 0.5, sample_seconds: 1}
units:
  - {id: Unit1, slot: 1, sim: {boot_seconds: 0.3, shutdown_seconds: 0.5}}
  - {id: Unit2, slot: 2, sim: {boot_seconds: 0.3, shutdown_seconds: 0.5}}
  - {id: Unit3, slot: 3, sim: {boot_seconds: 0.3, shutdown_seconds: 0.5}}
"""
ACCOUNTS = "/redfish/v1/AccountService/Accounts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"racklet_vm_{name}", VM_DIR / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod     # (dataclasses look their module up there)
    spec.loader.exec_module(mod)
    return mod


vm = _load("vm")
guest = _load("guest_checks")      # its i2c-stub addresses and gpio-sim lines: the VM's init makes them
writelog = _load("writelog")
TIMEOUT = 150 if vm.kvm_usable() and os.environ.get("RACKLET_VM_ACCEL") != "tcg" else 600   # boot, start, workload


def seed() -> int:
    return int(os.environ.get("RACKLET_POWERCUT_SEED", DEFAULT_SEED))


def make_steps(rng: random.Random) -> list[dict]:
    """The changes the VM's client sends, in order: ``key`` names what each one changes."""
    steps = []
    for i in range(STEPS):
        kind = ("tag", "account", "lockout")[i % 3]
        if kind == "tag":
            unit = f"Unit{rng.randint(1, 3)}"
            steps.append({"kind": kind, "key": unit, "value": f"cut-{i}", "method": "PATCH",
                          "uri": f"/redfish/v1/Chassis/{unit}", "body": {"AssetTag": f"cut-{i}"}})
        elif kind == "account":
            steps.append({"kind": kind, "key": f"cut{i}", "value": True, "method": "POST", "uri": ACCOUNTS,
                          "body": {"UserName": f"cut{i}", "Password": ACCOUNT_PASSWORD, "RoleId": "ReadOnly"}})
        else:
            steps.append({"kind": kind, "key": "threshold", "value": 3 + i, "method": "PATCH",
                          "uri": "/redfish/v1/AccountService", "body": {"AccountLockoutThreshold": 3 + i}})
    return steps


def lines_of(console: str, tag: str) -> list[dict]:
    """The JSON step after ``tag`` on each console line that starts with it (a line the
    power cut broke off is not one)."""
    decode, found = json.JSONDecoder().raw_decode, []
    for line in console.splitlines():
        if line.startswith(tag + " "):
            try:
                found.append(decode(line.split(" ", 1)[1])[0])
            except json.JSONDecodeError:
                pass
    return found


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """One VM run, its power cut at the chosen acknowledgement: the paths and what was said."""
    reason = vm.unavailable(allow_tcg=True)   # short enough to run emulated where KVM does not work
    if reason:
        pytest.skip(reason)
    missing = [t for t in ("mkfs.ext4", "e2fsck", "debugfs") if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs e2fsprogs ({', '.join(missing)}): apt-get install e2fsprogs")
    tmp = tmp_path_factory.mktemp("powercut")
    rng = random.Random(seed())
    steps = make_steps(rng)
    at = rng.randint(2, STEPS)      # the acknowledgement after which the power goes
    print(f"power cut: seed {seed()}, after acknowledgement {at} of {STEPS}", file=sys.stderr)
    root = tmp / "root"
    (tmp / "pw").write_text(ADMIN_PASSWORD + "\n")
    r = run(cli() + ["init", "--state-dir", str(root / "state"), "--admin-password-file", str(tmp / "pw")])
    assert r.returncode == 0, r.stderr
    base, disk, log = tmp / "base.img", tmp / "disk.img", tmp / "writes.log"
    r = run(["mkfs.ext4", "-q", "-F", "-d", str(root), "-E", "lazy_itable_init=0,lazy_journal_init=0",
             str(base), f"{IMAGE_MB}M"])
    assert r.returncode == 0, r.stderr
    shutil.copyfile(base, disk)
    log.touch()
    out = tmp / "out"
    out.mkdir()
    (out / "manifest.yaml").write_text(MANIFEST)
    (out / "job.json").write_text(json.dumps({"user": "admin", "password": ADMIN_PASSWORD, "steps": steps}))

    def power_cut(console: str) -> bool:
        whole_lines = console[:console.rfind("\n") + 1]
        return (len(lines_of(whole_lines, "racklet-ack")) >= at or "racklet-workload-done" in console
                or "racklet-serve-failed" in console or "racklet-login-failed" in console
                or "racklet-vm: exit" in console)
    try:
        status, console = vm.run([sys.executable, str(VM_DIR / "guest_powercut.py"), str(out)], str(out),
                                 guest.I2C_ADDRESSES, guest.LINES, timeout=TIMEOUT,
                                 log=lambda msg: print(msg, file=sys.stderr), disk=(str(disk), str(log)),
                                 cut=power_cut, allow_tcg=True)
    except vm.VmUnavailable as e:
        pytest.skip(f"{e}; {vm.INSTALL_HINT}")
    acked = lines_of(console, "racklet-ack")
    assert "racklet-ready" in console and acked, f"the VM's service never acknowledged a change:\n{console[-4000:]}"
    assert not lines_of(console, "racklet-refused"), console[-4000:]
    assert acked == steps[:len(acked)], "the acknowledgements are not the steps in order"
    return {"tmp": tmp, "base": base, "log": log, "steps": steps, "acked": acked, "at": at, "console": console}


def test_the_power_went_in_the_middle_of_the_workload(cut):
    assert len(cut["acked"]) >= min(cut["at"], STEPS)
    log = writelog.read(str(cut["log"]))
    assert log.vouched > 0 and any(e.flags & writelog.FLUSH for e in log.durable)
    assert sum(e.is_write for e in log.entries) > len(cut["acked"])   # the disk was written to


def recover(cut: dict, name: str, later: list) -> Path:
    """The image a power cut leaves (the durable writes, then ``later``), its journal
    replayed, checked, and its state directory copied out: returns that directory."""
    image = cut["tmp"] / f"{name}.img"
    writelog.rebuild(str(cut["base"]), str(cut["log"]), str(image), later)
    r = run(["e2fsck", "-E", "journal_only", "-y", str(image)])
    assert r.returncode in (0, 1), r.stdout + r.stderr          # 1: the journal was replayed
    r = run(["e2fsck", "-f", "-n", str(image)])
    assert r.returncode == 0, f"ext4 damaged after the journal's replay:\n{r.stdout}{r.stderr}"
    dest = cut["tmp"] / name
    dest.mkdir()
    r = run(["debugfs", "-R", f"rdump /state {dest}", str(image)])
    assert (dest / "state" / "racklet.db").exists(), r.stdout + r.stderr
    return dest / "state"


def allowed(cut: dict, kind: str, key: str):
    """The values a thing may hold: its last acknowledged one, or that of the change in
    flight when the power went (the client sends one at a time, in order, and the host
    cuts as soon as it reads an acknowledgement: at most the next step had gone out);
    None if no change to it was acknowledged."""
    acked = [s for s in cut["acked"] if (s["kind"], s["key"]) == (kind, key)]
    if not acked:
        return None
    in_flight = cut["steps"][len(cut["acked"]):len(cut["acked"]) + 1]
    return {acked[-1]["value"], *(s["value"] for s in in_flight if (s["kind"], s["key"]) == (kind, key))}


@pytest.mark.parametrize("variant", ["flushed-only", "with-unflushed-writes"])
def test_every_acknowledged_change_survives_the_power_cut(cut, variant):
    log = writelog.read(str(cut["log"]))
    later = []
    if variant == "with-unflushed-writes":
        writes = log.unflushed_writes
        later = random.Random(seed() + 1).sample(writes, k=len(writes) // 2)   # some, in any order
    state = recover(cut, variant, later)
    db = sqlite3.connect(state / "racklet.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    (state.parent / "manifest.yaml").write_text(MANIFEST)
    port = free_port()
    server_log = state.parent / "serve.log"
    with server_log.open("w") as out:
        proc = subprocess.Popen(cli() + ["serve", "--state-dir", str(state), "--port", str(port), "--workers", "1",
                                         "--sse-port", "0", "--metrics-port", "0",
                                         "--manifest", str(state.parent / "manifest.yaml")],
                                stdout=out, stderr=subprocess.STDOUT)
    server = Server(state, port, proc, server_log)
    try:
        wait_until_up(server)
        c = server.client()
        checked = 0
        for unit in ("Unit1", "Unit2", "Unit3"):
            ok = allowed(cut, "tag", unit)
            if ok is not None:
                tag = c.get(f"{server.url}/redfish/v1/Chassis/{unit}", timeout=30).json()["AssetTag"]
                assert tag in ok, (unit, tag, ok)
                checked += 1
        ok = allowed(cut, "lockout", "threshold")
        if ok is not None:
            threshold = c.get(server.url + "/redfish/v1/AccountService", timeout=30).json()["AccountLockoutThreshold"]
            assert threshold in ok, (threshold, ok)
            checked += 1
        users = {m["UserName"] for m in c.get(server.url + ACCOUNTS + "?$expand=.", timeout=30).json()["Members"]}
        for step in cut["acked"]:
            if step["kind"] == "account":
                assert step["key"] in users, (step["key"], users)
                checked += 1
        assert checked >= 1
        # an account made before the cut logs in with its password: its hash was stored whole
        made = [s["key"] for s in cut["acked"] if s["kind"] == "account"]
        if made:
            r = requests.get(server.url + "/redfish/v1/Systems", auth=(made[0], ACCOUNT_PASSWORD),
                             verify=server.ca, timeout=30)
            assert r.status_code == 200, r.text
    finally:
        server.stop()
