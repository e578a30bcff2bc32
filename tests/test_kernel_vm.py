"""The real Linux kernel interfaces: Debian's kernel in QEMU, i2c-stub and gpio-sim.

tools/vm/vm.py boots the kernel (fetched once with ``apt-get download``, cached in
``~/.cache/redfish-racklet/vm``) with the host's / shared read-only, and runs
tools/vm/guest_checks.py inside it: the real smbus2 and gpiod drivers on
/dev/i2c-N and /dev/gpiochipN, then ``redfish-racklet agent`` with a ``driver: linux``
manifest. The guest writes one JSON result per check; each is asserted here.

Needs qemu-system-x86 and busybox-static from apt, and a KVM that works: without it
the test skips (RACKLET_VM_ACCEL=tcg runs it emulated, in about 70 s more).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

VM_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "vm")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"racklet_vm_{name}", os.path.join(VM_DIR, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vm = _load("vm")
guest = _load("guest_checks")
TIMEOUT = 110 if os.environ.get("RACKLET_VM_ACCEL") != "tcg" else 300  # whole boot + checks


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    reason = vm.unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("vm")
    argv = [sys.executable, os.path.join(VM_DIR, "guest_checks.py"), str(out)]
    try:
        status, console = vm.run(argv, str(out), guest.I2C_ADDRESSES, guest.LINES, timeout=TIMEOUT,
                                 log=lambda msg: print(msg, file=sys.stderr))
    except vm.VmUnavailable as e:
        pytest.skip(f"{e}; {vm.INSTALL_HINT}")
    found = {r["check"]: r for r in guest.load_results(str(out))}
    assert status == 0 and found, f"the VM did not finish its checks (status {status}):\n{console[-4000:]}"
    return found


@pytest.mark.parametrize("check", guest.CHECKS)
def test_in_the_vm(results, check):
    assert check in results, f"no result for {check!r}; got {sorted(results)}"
    assert results[check]["ok"], results[check]["detail"]
