"""Boot a Debian kernel in QEMU and run a Python program of this tree against the
kernel's own i2c-stub (SMBus) and gpio-sim (GPIO) devices.

Why a VM: the agent's drivers talk to ``/dev/i2c-N`` (smbus2) and ``/dev/gpiochipN``
(libgpiod v2). Only a real kernel proves that the ioctls, the byte order on the bus,
line bias, edge events and debounce behave as our fakes claim. The host's kernel
cannot be touched (no root module loading on CI, no hardware), so we boot our own.

Pieces, all from Debian's package registry, cached under ``~/.cache/redfish-racklet/vm``:

- the kernel: ``apt-get download`` of Debian's ``linux-binary-V``, ``linux-base-V`` and
  ``linux-modules-V`` (nothing is installed on the host). Debian's bookworm (6.1) and
  trixie (6.12) kernels are built without ``CONFIG_GPIO_SIM``; the newer kernel in
  ``trixie-backports`` has it. A private apt configuration in the cache directory
  reads that suite, so the host's own apt sources are never changed.
- ``busybox-static`` (installed with apt) as the initramfs's only program.

The VM sees the host's ``/`` read-only over virtio-9p and chroots into it, so the
program runs with the host's own venv; it writes its results into a second,
writable 9p share (the ``out`` directory) and powers the VM off.

Command line: ``python tools/vm/vm.py fetch`` (download and cache the kernel),
``python tools/vm/vm.py check`` (boot and run ``tools/vm/guest_checks.py``, print its results).
"""

from __future__ import annotations

import glob
import json
import lzma
import os
import platform
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("RACKLET_VM_CACHE", os.path.expanduser("~/.cache/redfish-racklet/vm"))
SUITE = os.environ.get("RACKLET_VM_SUITE", "trixie-backports")
MIRROR = "http://deb.debian.org/debian"
QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
# What the VM loads, in this order after their dependencies: the 9p share of the host,
# the SMBus character devices, the SMBus stub, configfs and the GPIO simulator; a virtio
# disk and ext4 for the power-cut test (tests/test_power_cut.py). A module the kernel has
# built in is skipped.
MODULES = ["9pnet_virtio", "9p", "i2c-dev", "i2c-stub", "configfs", "gpio-sim", "virtio_blk", "ext4"]
INSTALL_HINT = ("needs qemu-system-x86 and KVM: apt-get install qemu-system-x86 busybox-static; "
                "the kernel is fetched with apt-get download")


class VmUnavailable(Exception):
    """Something the VM needs is missing here; the message says what."""


# -- the kernel ---------------------------------------------------------------------
def _apt_options() -> list[str]:
    """apt reading only Debian's SUITE, with its lists under the cache directory."""
    base = os.path.join(CACHE, "apt")
    for d in ("lists/partial", "cache/archives/partial", "etc"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    sources = os.path.join(base, "etc", "sources.list")
    with open(sources, "w") as f:
        f.write(f"deb {MIRROR} {SUITE} main\n")
    return ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={base}/lists", "-o", f"Dir::Cache={base}/cache",
            "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1", "-q"]


def cached_kernel() -> str | None:
    """The newest kernel directory already prepared in the cache with every module of
    MODULES (a cache made when the list was shorter is made again), or None."""
    ready = sorted(glob.glob(os.path.join(CACHE, "kernel-*", "vmlinuz")))
    return os.path.dirname(ready[-1]) if ready and _complete(os.path.dirname(ready[-1])) else None


def _complete(kernel_dir: str) -> bool:
    try:
        with open(os.path.join(kernel_dir, "modules", "wanted")) as f:
            return set(f.read().split()) >= {m.replace("-", "_") for m in MODULES}
    except FileNotFoundError:
        return False


def fetch(log=print) -> str:
    """Download and prepare Debian's current kernel of SUITE; returns its cache directory."""
    if not shutil.which("apt-get"):
        raise VmUnavailable("apt-get is needed to download Debian's kernel")
    opts = _apt_options()
    log(f"vm: apt-get update ({SUITE})")
    subprocess.run(["apt-get", *opts, "update"], check=True, capture_output=True, text=True)
    deps = subprocess.run(["apt-cache", *opts, "depends", "linux-image-amd64"], check=True,
                          capture_output=True, text=True).stdout
    image = next((w.split()[-1] for w in deps.splitlines()
                  if w.strip().startswith("Depends: linux-image-") and w.split()[-1][12].isdigit()), None)
    if image is None:
        raise VmUnavailable(f"no linux-image-amd64 kernel in Debian {SUITE}")
    version = image.removeprefix("linux-image-")
    target = os.path.join(CACHE, f"kernel-{version}")
    if os.path.exists(os.path.join(target, "vmlinuz")) and _complete(target):
        return target
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        log(f"vm: apt-get download the {version} kernel (about 120 MB, once)")
        subprocess.run(["apt-get", *opts, "download", f"linux-binary-{version}", f"linux-base-{version}",
                        f"linux-modules-{version}"], check=True, cwd=tmp, capture_output=True, text=True)
        root = os.path.join(tmp, "root")
        for deb in glob.glob(os.path.join(tmp, "*.deb")):
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        tree = os.path.join(root, "usr", "lib", "modules", version)
        with open(os.path.join(tree, "config")) as f:
            if "CONFIG_GPIO_SIM=m" not in f.read():
                raise VmUnavailable(f"Debian's {version} kernel has no gpio-sim module")
        staging = target + ".part"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(os.path.join(staging, "modules"))
        order = _copy_modules(tree, os.path.join(staging, "modules"))
        with open(os.path.join(staging, "modules", "order"), "w") as f:
            f.write("\n".join(order) + "\n")
        with open(os.path.join(staging, "modules", "wanted"), "w") as f:
            f.write("\n".join(m.replace("-", "_") for m in MODULES) + "\n")
        shutil.copy(os.path.join(tree, "vmlinuz"), os.path.join(staging, "vmlinuz"))
        shutil.rmtree(target, ignore_errors=True)   # one made with fewer modules
        os.replace(staging, target)
    return target


def _module_depends(blob: bytes) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo section (what modules.dep is made of)."""
    at = blob.find(b"\0depends=")
    if at < 0:
        return []
    value = blob[at + 9:blob.index(b"\0", at + 1)].decode()
    return [d for d in value.split(",") if d]


def _copy_modules(tree: str, dest: str) -> list[str]:
    """Decompress MODULES and everything they depend on into ``dest``; returns the load
    order (dependencies first). Names compare with '-' and '_' alike, as modprobe does."""
    paths = {}
    for p in glob.glob(os.path.join(tree, "kernel", "**", "*.ko*"), recursive=True):
        paths[os.path.basename(p).split(".ko")[0].replace("-", "_")] = p
    builtin = set()
    if os.path.exists(os.path.join(tree, "modules.builtin")):
        with open(os.path.join(tree, "modules.builtin")) as f:
            builtin = {os.path.basename(line.strip()).split(".ko")[0].replace("-", "_") for line in f}
    order: list[str] = []

    def add(name: str) -> None:
        key = name.replace("-", "_")
        if key in order or (key in builtin and key not in paths):
            return
        if key not in paths:
            raise VmUnavailable(f"the kernel has no module {name}")
        with open(paths[key], "rb") as f:
            blob = f.read()
        if paths[key].endswith(".xz"):
            blob = lzma.decompress(blob)
        for dep in _module_depends(blob):
            add(dep)
        with open(os.path.join(dest, key + ".ko"), "wb") as f:
            f.write(blob)
        order.append(key)

    for m in MODULES:
        add(m)
    return order


# -- the initramfs --------------------------------------------------------------------
def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 1) -> bytes:
    """One record of the 'newc' cpio format the kernel unpacks as its initramfs."""
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08X" % v for v in fields) + name.encode() + b"\0"
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def build_initramfs(kernel_dir: str, path: str) -> None:
    """busybox, our ``init.sh`` and the modules: all the VM has before it mounts the host."""
    if not os.path.exists(BUSYBOX) or "statically linked" not in _file_kind(BUSYBOX):
        raise VmUnavailable("needs a static busybox: apt-get install busybox-static")
    entries = [("bin", 0o40755, b""), ("lib", 0o40755, b""), ("lib/modules", 0o40755, b"")]
    with open(BUSYBOX, "rb") as f:
        entries.append(("bin/busybox", 0o100755, f.read()))
    with open(os.path.join(HERE, "init.sh"), "rb") as f:
        entries.append(("init", 0o100755, f.read()))
    mods = os.path.join(kernel_dir, "modules")
    for name in sorted(os.listdir(mods)):
        with open(os.path.join(mods, name), "rb") as f:
            entries.append((f"lib/modules/{name}", 0o100644, f.read()))
    with open(path, "wb") as out:
        for ino, (name, mode, data) in enumerate(entries, start=1):
            out.write(_cpio_entry(name, mode, data, ino))
        out.write(_cpio_entry("TRAILER!!!", 0, b"", 0))


def _file_kind(path: str) -> str:
    """Whether an ELF file has an interpreter (dynamic) or not, without `file(1)`."""
    with open(path, "rb") as f:
        blob = f.read()
    return "dynamically linked" if b"/lib64/ld-linux" in blob[:4096] else "statically linked"


# -- running it ----------------------------------------------------------------------
def kvm_usable() -> bool:
    """/dev/kvm opens read-write and, on x86, the CPU offers hardware virtualization
    (vmx/svm): a nested guest can have /dev/kvm without it, and its KVM then fails at the
    guest's first instructions. Checked here so such a machine skips without fetching and
    booting a kernel first."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    if platform.machine() in ("x86_64", "i686"):
        try:
            with open("/proc/cpuinfo") as f:
                flags = {w for line in f if line.startswith("flags") for w in line.split()}
        except OSError:
            return True   # cannot tell: let QEMU try (run() still notices a KVM failure)
        return bool(flags & {"vmx", "svm"})
    return True


def unavailable(allow_tcg: bool = False) -> str | None:
    """Why the VM cannot run here (None: it can). ``allow_tcg``: emulation will do."""
    if not shutil.which(QEMU):
        return f"{QEMU} not found; {INSTALL_HINT}"
    if not os.path.exists(BUSYBOX):
        return f"{BUSYBOX} not found; {INSTALL_HINT}"
    if not kvm_usable() and os.environ.get("RACKLET_VM_ACCEL") != "tcg" and not allow_tcg:
        return (f"KVM is not usable here (/dev/kvm does not open read-write, or the CPU shows no "
                f"vmx/svm: nested virtualization missing); RACKLET_VM_ACCEL=tcg runs it emulated; {INSTALL_HINT}")
    return None


def run(argv: list[str], out: str, i2c: list[int], lines: list[str], timeout: float = 110,
        log=print, disk: tuple[str, str] | None = None, cut=None, allow_tcg: bool = False) -> tuple[int, str]:
    """Boot the VM and run ``argv`` (host paths) inside it, chrooted into the host's /.

    ``i2c``: i2c-stub's chip addresses; ``lines``: names of gpio-sim's lines (one bank).
    ``out``: a host directory the program may write to (its path is the same inside).
    ``disk``: (an image file, a log file): the image is the guest's ``/dev/vda`` (virtio,
    with a volatile write cache, so the guest's fsync becomes a flush), and QEMU's
    ``blklogwrites`` records every write and flush to it, in order, in the log (the
    dm-log-writes format: what a power cut at any flush would have left is rebuilt from it).
    ``cut``: called with the console text so far; when it returns true, QEMU is killed
    (SIGKILL) at once: the power cut. ``allow_tcg``: emulate (TCG) where KVM does not work.
    Returns (the program's exit status, the console text); -1 when it did not finish.
    """
    try:
        kernel = cached_kernel() or fetch(log)
    except subprocess.CalledProcessError as e:
        raise VmUnavailable(f"could not download Debian's kernel ({' '.join(e.cmd[:1] + e.cmd[-2:])}): "
                            f"{(e.stderr or '').strip()[-300:]}") from None
    out = os.path.abspath(out)
    initrd = os.path.join(out, "initramfs.cpio")
    build_initramfs(kernel, initrd)
    with open(os.path.join(out, "job.sh"), "w") as f:
        f.write("mkdir -p /run/tmp && export PATH=/usr/bin:/bin HOME=/run/tmp TMPDIR=/run/tmp "
                "PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8\n"
                f"cd {shlex.quote(REPO)}\n{shlex.join(argv)}\necho \"racklet-vm: exit $?\"\n")
    accel = "kvm" if kvm_usable() and os.environ.get("RACKLET_VM_ACCEL") != "tcg" else "tcg"
    if accel == "tcg" and not allow_tcg and os.environ.get("RACKLET_VM_ACCEL") != "tcg":
        raise VmUnavailable(unavailable())
    append = ("console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init "
              f"racklet.out={out} racklet.i2c={','.join(f'{a:#x}' for a in i2c)} "
              f"racklet.lines={','.join(lines)}")
    cmd = [QEMU, "-accel", accel, "-m", "512", "-smp", "1", "-nodefaults", "-display", "none",
           "-no-reboot", "-serial", "stdio", "-kernel", os.path.join(kernel, "vmlinuz"),
           "-initrd", initrd, "-append", append,
           "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
           "-virtfs", f"local,path={out},mount_tag=out,security_model=none,multidevs=remap"]
    if disk:
        image, write_log = disk
        cmd += ["-blockdev", f"driver=file,filename={image},node-name=racklet-data,cache.direct=off",
                "-blockdev", f"driver=file,filename={write_log},node-name=racklet-log",
                "-blockdev", "driver=blklogwrites,file=racklet-data,log=racklet-log,node-name=racklet-disk,"
                             "log-sector-size=512",
                "-device", "virtio-blk-pci,drive=racklet-disk"]
    start = time.monotonic()
    console = _watch(cmd, timeout, cut)
    if "KVM internal error" in console or "kvm_buf_set_msrs" in console:
        raise VmUnavailable("/dev/kvm opens, but KVM cannot run the guest here (nested virtualization "
                            "without the CPU's support?); RACKLET_VM_ACCEL=tcg runs it emulated (TCG) instead")
    log(f"vm: {accel} run took {time.monotonic() - start:.1f} s")
    status = -1
    for line in console.splitlines():
        if line.startswith("racklet-vm: exit "):
            status = int(line.split()[-1])
    return status, console


def _watch(cmd: list[str], timeout: float, cut=None) -> str:
    """Run QEMU and return its console; stop it early if KVM fails (QEMU then pauses
    the guest instead of exiting), when ``cut(console)`` says so, or when ``timeout`` passes."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    os.set_blocking(proc.stdout.fileno(), False)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            data = proc.stdout.read() if ready else None
            if data:
                chunks.append(data)
            elif ready:  # end of output: QEMU exited
                break
            text = b"".join(chunks)
            if data and cut is not None and cut(text.decode(errors="replace")):
                break   # the finally: SIGKILL at once
            if b"KVM internal error" in text or time.monotonic() > deadline:
                if time.monotonic() > deadline:
                    chunks.append(f"\nracklet-vm: timed out after {timeout:.0f} s\n".encode())
                break
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return b"".join(chunks).decode(errors="replace")


def main() -> int:
    what = sys.argv[1] if len(sys.argv) > 1 else "check"
    if what == "fetch":
        print(fetch())
        return 0
    reason = unavailable()
    if reason:
        print(f"vm: {reason}", file=sys.stderr)
        return 2
    sys.path.insert(0, HERE)
    import guest_checks
    with tempfile.TemporaryDirectory(prefix="racklet-vm-") as out:
        status, console = run([sys.executable, os.path.join(HERE, "guest_checks.py"), out], out,
                              guest_checks.I2C_ADDRESSES, guest_checks.LINES)
        results = guest_checks.load_results(out)
    for r in results:
        print(json.dumps(r))
    if status != 0 or not results or not all(r["ok"] for r in results):
        print(console, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
