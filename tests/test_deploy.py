"""deploy/: the systemd units, gunicorn.conf.py, ``redfish-racklet install``, the container
and the Kubernetes manifest (docs/deployment.md).

The units are checked three ways: ``systemd-analyze verify`` (on copies pointed at this
virtualenv), the sandbox promises of docs/deployment.md's table against the files, and a
run of the four programs exactly as their ExecStart= lines (and Environment=) say, with
only the paths and ports swapped for a temporary directory and free loopback ports."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import requests
import yaml

from redfish_racklet import cli
from redfish_racklet.agent import SOCKET_NAME
from tests.clients import client_env
from tests.conftest import ADMIN_PASSWORD, ROOT, TEST_MANIFEST, children, free_port, wait_for

DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
TARGET = "redfish-racklet.target"
AGENT, API, SSE, METRICS = (f"redfish-racklet-{n}.service" for n in ("agent", "api", "sse", "metrics"))
SERVICES = (AGENT, API, SSE, METRICS)
UNIT_PREFIX = "/opt/redfish-racklet/bin/"
STATE, ETC, RUN = "/var/lib/redfish-racklet", "/etc/redfish-racklet", "/run/redfish-racklet"
VENV_BIN = str(Path(sys.prefix) / "bin") + "/"
DOC = ROOT / "docs" / "deployment.md"


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as {section: [(key, value), ...]}: keys repeat (DeviceAllow=, Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(name: str, key: str, section: str = "Service") -> list[str]:
    return [v for k, v in unit(name).get(section, []) if k == key]


def one(name: str, key: str, section: str = "Service") -> str | None:
    found = values(name, key, section)
    assert len(found) <= 1, f"{name}: {key}= given {len(found)} times"
    return found[0] if found else None


# -- the unit files -------------------------------------------------------------------------

def rewrite(text: str, state: Path, etc: Path) -> str:
    """The units' paths moved into a test's directory (the runtime directory beside the state's)."""
    return (text.replace(UNIT_PREFIX, VENV_BIN).replace(STATE, str(state)).replace(ETC, str(etc))
            .replace(RUN, str(state.parent / "run")))


def test_units_pass_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze (systemd) to verify the units")
    state, etc = tmp_path / "state", tmp_path / "etc"
    state.mkdir()
    etc.mkdir()
    (state / "racklet.db").touch()       # the agent's AssertPathExists=
    units = tmp_path / "units"
    units.mkdir()
    for name in (TARGET, *SERVICES):
        (units / name).write_text(rewrite((SYSTEMD / name).read_text(), state, etc))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(units / n) for n in (TARGET, *SERVICES))],
                       capture_output=True, text=True, timeout=30, cwd=units)
    ours = [line for line in (r.stdout + r.stderr).splitlines() if "redfish-racklet" in line]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr


def sandbox_table() -> list[tuple[str, str, str]]:
    """(key, value, which units) of each row of docs/deployment.md's sandbox table, whose rows
    read ``| `Key=value` | all / agent / API, SSE, metrics | why |``."""
    rows = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"\|\s*`([A-Za-z]+)=([^`]*)`\s*\|\s*([^|]+?)\s*\|", line)
        if m:
            rows.append(m.groups())
    return rows


def test_units_keep_the_sandbox_promises_of_the_docs():
    rows = sandbox_table()
    assert len(rows) >= 15, "docs/deployment.md lost its sandbox table"
    who = {"all": SERVICES, "agent": (AGENT,), "API, SSE, metrics": (API, SSE, METRICS)}
    for key, value, where in rows:
        assert where in who, f"sandbox table: unknown units {where!r}"
        for name in who[where]:
            got = values(name, key)
            if key in ("DeviceAllow", "Environment"):
                assert value in got, f"{name}: {key}={value} promised, has {got}"
            elif key == "RestrictAddressFamilies":
                assert [set(v.split()) for v in got] == [set(value.split())], (name, got)
            else:
                assert got == [value], f"{name}: {key}={value} promised, has {got}"
    # what the docs promise by absence: devices only for the agent, no dynamic user anywhere
    assert set(values(AGENT, "DeviceAllow")) == {"char-i2c rw", "char-gpiochip rw"}
    assert one(AGENT, "PrivateDevices") is None     # it would hide /dev/i2c-* and /dev/gpiochip*
    for name in (API, SSE, METRICS):
        assert values(name, "DeviceAllow") == [] and values(name, "SupplementaryGroups") == [], name
    for name in SERVICES:
        assert one(name, "DynamicUser") in (None, "no"), name
        assert one(name, "WantedBy", "Install") == TARGET and one(name, "PartOf", "Unit") == TARGET, name
    assert set(one(TARGET, "Wants", "Unit").split()) == set(SERVICES)
    assert AGENT in one(API, "After", "Unit").split() and AGENT in one(API, "Wants", "Unit").split()
    assert API in one(METRICS, "After", "Unit").split()   # the API makes the metrics directory
    # the workers' memory-mapped metric files live on a tmpfs both units share, never in the
    # state directory (a full state disk would SIGBUS the workers)
    for name in (API, METRICS):
        assert one(name, "RuntimeDirectory") == "redfish-racklet", name
        assert one(name, "RuntimeDirectoryPreserve") == "yes", name
    assert environment(METRICS, str)["PROMETHEUS_MULTIPROC_DIR"] == RUN + "/prometheus"


# -- the units, run as they are written -------------------------------------------------------

def command(name: str, key: str, swap: Callable[[str], str]) -> list[str] | None:
    """A unit's command line (ExecStart=, ExecStartPre=), each argument through ``swap``."""
    line = one(name, key)
    return None if line is None else [swap(arg) for arg in shlex.split(line)]


def environment(name: str, swap: Callable[[str], str]) -> dict[str, str]:
    env = {}
    for assignment in values(name, "Environment"):
        key, _, value = assignment.partition("=")
        env[key] = swap(value)
    return env


def test_units_run_as_written(tmp_path):
    """agent, API (gunicorn -c deploy/gunicorn.conf.py), SSE and metrics as four processes,
    each from its unit's ExecStart=, started in the units' order."""
    state, etc = tmp_path / "state", tmp_path / "etc"
    etc.mkdir()
    shutil.copy(DEPLOY / "gunicorn.conf.py", etc / "gunicorn.conf.py")
    (etc / "manifest.yaml").write_text(TEST_MANIFEST)
    (tmp_path / "pw").write_text(ADMIN_PASSWORD + "\n")
    assert cli.main(["init", "--state-dir", str(state), "--admin-password-file", str(tmp_path / "pw")]) == 0
    ports = {p: str(free_port()) for p in ("8443", "8444", "8445")}

    def swap(arg: str) -> str:
        arg = ports.get(arg, arg)
        return "127.0.0.1" if arg == "0.0.0.0" else rewrite(arg, state, etc)
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        for name in SERVICES:
            env = {k: v for k, v in client_env().items() if not k.startswith(("RACKLET_", "PROMETHEUS_"))}
            env.update(environment(name, swap), STATE_DIRECTORY=str(state))
            if one(name, "RuntimeDirectory"):   # what systemd makes and names for the unit
                (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
                env["RUNTIME_DIRECTORY"] = str(tmp_path / "run")
            pre = command(name, "ExecStartPre", swap)
            if pre:
                subprocess.run(pre, env=env, check=True, timeout=10)
            with (logs / f"{name}.log").open("w") as out:
                procs.append(subprocess.Popen(command(name, "ExecStart", swap), env=env, cwd=tmp_path,
                                              stdout=out, stderr=subprocess.STDOUT))
            if name == AGENT:
                wait_for(lambda: (state / SOCKET_NAME).exists() or procs[0].poll() is not None, "agent socket")
        api = f"https://127.0.0.1:{ports['8443']}"
        ca = str(state / "ca.pem")

        def up():
            dead = [p.args for p in procs if p.poll() is not None]
            assert not dead, f"exited: {dead}: " + " ".join(f.read_text() for f in logs.iterdir())
            try:
                return requests.get(api + "/redfish/v1", verify=ca, timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_for(up, "the API over HTTPS with the rack's CA", timeout=20)
        s = requests.Session()
        s.verify, s.auth, s.trust_env = ca, ("admin", ADMIN_PASSWORD), False
        r = s.get(api + "/redfish/v1/Systems", timeout=10)
        assert r.status_code == 200, r.text
        manifest_units = {u["id"] for u in yaml.safe_load(TEST_MANIFEST)["units"]}
        members = {m["@odata.id"].rsplit("/", 1)[1] for m in r.json()["Members"]}
        assert members and members <= manifest_units
        # the SSE listener: the API advertises its port, and it streams
        uri = wait_for(lambda: s.get(api + "/redfish/v1/EventService", timeout=10).json().get("ServerSentEventUri"),
                       "ServerSentEventUri")
        assert f":{ports['8444']}/" in uri
        with s.get(uri, stream=True, timeout=10) as stream:
            assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        # the metrics endpoint sees the API workers' counters (PROMETHEUS_MULTIPROC_DIR shared)
        metrics = f"https://127.0.0.1:{ports['8445']}/metrics"

        def api_counters():
            text = requests.get(metrics, verify=ca, timeout=5).text
            return text if "racklet_http_request_total{" in text else None
        body = wait_for(api_counters, "API counters in /metrics")
        assert "racklet_rack_power_watts" in body
        assert list((tmp_path / "run" / "prometheus").glob("*.db")), "no worker metric files in the runtime dir"
        assert not (state / "prometheus").exists()
        # the API's arbiter holds serve's lock: a stray `serve` on the state dir refuses to start
        r = subprocess.run([sys.executable, "-m", "redfish_racklet", "serve", "--state-dir", str(state),
                            "--port", str(free_port())], capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and "already running" in r.stderr, r.stderr
        # a factory reset: the agent finds the API's arbiter through that lock and has it
        # start new workers (no cached logins), as `serve` does
        workers = set(children(procs[1].pid))
        assert workers
        r = s.post(api + "/redfish/v1/Managers/RMC/Actions/Manager.ResetToDefaults",
                   json={"ResetType": "ResetAll"}, timeout=30)
        assert r.status_code == 200, r.text
        wait_for(lambda: (now := set(children(procs[1].pid))) and not now & workers, "new API workers")
        assert "could not ask serve" not in (logs / f"{AGENT}.log").read_text()
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# -- redfish-racklet install ------------------------------------------------------------------

def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redfish_racklet", "install", *args],
                          capture_output=True, text=True, timeout=30)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_install_into_a_root_and_never_clobber(tmp_path):
    root = tmp_path / "root"
    pw = tmp_path / "pw"
    pw.write_text(ADMIN_PASSWORD + "\n")
    r = install("--root", str(root), "--dry-run")
    assert r.returncode == 0 and "would: write" in r.stdout and not root.exists(), r.stdout + r.stderr

    r = install("--root", str(root), "--admin-password-file", str(pw))
    assert r.returncode == 0, r.stderr
    units, state, etc = root / "etc/systemd/system", root / STATE.lstrip("/"), root / ETC.lstrip("/")
    for name in (TARGET, *SERVICES):
        shipped = (SYSTEMD / name).read_text()
        assert (units / name).read_text() == shipped.replace(UNIT_PREFIX, VENV_BIN), name
        for want in values(name, "WantedBy", "Install"):
            link = units / f"{want}.wants" / name
            assert os.readlink(link) == f"/etc/systemd/system/{name}"
    assert (etc / "gunicorn.conf.py").read_text() == (DEPLOY / "gunicorn.conf.py").read_text()
    bundled = Path(cli.__file__).parent / "manifests" / "sim-5.yaml"
    assert (etc / "manifest.yaml").read_text() == bundled.read_text()
    assert cli.is_initialized(str(state)) and (state.stat().st_mode & 0o777) == 0o700
    assert (root / "etc/udev/rules.d/60-redfish-racklet.rules").read_text().count("GROUP=") == 2

    # a second run keeps the state directory and the administrator's files
    ca = (state / "ca.pem").read_bytes()
    (etc / "manifest.yaml").write_text("# edited by the administrator\n")
    before = tree(root)
    r = install("--root", str(root))
    assert r.returncode == 0, r.stderr
    assert (state / "ca.pem").read_bytes() == ca and "never overwritten" in r.stdout
    assert (etc / "manifest.yaml").read_text() == "# edited by the administrator\n"
    assert tree(root) == before

    # something else where the state directory goes: refused before anything is written
    other = tmp_path / "other"
    (other / STATE.lstrip("/")).mkdir(parents=True)
    (other / STATE.lstrip("/") / "notes.txt").write_text("mine")
    r = install("--root", str(other))
    assert r.returncode == 1 and "not a redfish-racklet state directory" in r.stderr
    assert tree(other) == {"var", "var/lib", "var/lib/redfish-racklet", "var/lib/redfish-racklet/notes.txt"}


# -- the container ----------------------------------------------------------------------------

def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_containerfile_copies_what_exists_and_runs_a_valid_command():
    steps = containerfile()
    copies = [shlex.split(rest) for word, rest in steps if word == "COPY"]
    sources = [src for args in copies if not any(a.startswith("--from") for a in args) for src in args[:-1]]
    assert sources and all((ROOT / s).exists() for s in sources), sources
    images = {re.sub(r"^--platform=\S+\s+", "", rest).split()[0] for word, rest in steps if word == "FROM"}
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    assert images == {"${PYTHON_IMAGE}"} and re.fullmatch(r"python:3\.11-slim(-bookworm)?", args["PYTHON_IMAGE"])
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert not re.search(r"\b(gcc|build-essential|apt-get install)\b", runs)
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    entry = json.loads([rest for word, rest in steps if word == "ENTRYPOINT"][-1])
    cmd = json.loads([rest for word, rest in steps if word == "CMD"][-1])
    assert entry == ["redfish-racklet"]   # the console script of pyproject.toml
    assert 'redfish-racklet = "redfish_racklet.cli:main"' in (ROOT / "pyproject.toml").read_text()
    parsed = cli.parser().parse_args(cmd)
    volume = json.loads([rest for word, rest in steps if word == "VOLUME"][-1])
    assert parsed.command == "serve" and parsed.bind == "0.0.0.0" and volume == [parsed.state_dir]
    exposed = {int(p) for word, rest in steps if word == "EXPOSE" for p in rest.split()}
    assert exposed == {parsed.port, parsed.sse_port}


def test_container_builds():
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "info"], capture_output=True, timeout=15).returncode:
        pytest.skip("needs docker with a running daemon to build deploy/Containerfile")
    r = subprocess.run([docker, "build", "-f", str(DEPLOY / "Containerfile"), "-t", "redfish-racklet:test",
                        str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


# -- Kubernetes -------------------------------------------------------------------------------

def k8s() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "racklet.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_kubernetes_manifest_keeps_its_security_promises():
    objs = k8s()
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["nodeSelector"] and pod.get("hostNetwork") is not True and pod.get("hostPID") is not True
    assert not any("hostPath" in v for v in pod["volumes"])
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged") is not True and sc["capabilities"] == {"drop": ["ALL"]}
    # devices come from a device plugin's resource, not from privilege or /dev mounts
    assert [r for r in c["resources"]["limits"] if "/" in r] == ["squat.ai/racklet-rmc"]
    assert not any(m["mountPath"].startswith("/dev") for m in c["volumeMounts"])
    args = cli.parser().parse_args(c["args"])
    assert args.command == "serve" and args.bind == "0.0.0.0"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert args.state_dir in mounts and os.path.dirname(args.manifest) in mounts and "/tmp" in mounts
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"https": args.port, "sse": args.sse_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["scheme"] == "HTTPS" and get["path"] == "/redfish/v1" and get["port"] in ports
    svc = objs["Service"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= set(ports)
    assert objs["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kubernetes_manifest_kubectl_dry_run():
    if not shutil.which("kubectl"):
        pytest.skip("needs kubectl")
    r = subprocess.run(["kubectl", "apply", "--dry-run=client", "--validate=false", "-f",
                        str(DEPLOY / "kubernetes" / "racklet.yaml")],
                       capture_output=True, text=True, timeout=20, env=client_env())
    if r.returncode and ("connection refused" in r.stderr or "couldn't get current server" in r.stderr
                         or "no configuration" in r.stderr.lower()):
        pytest.skip("kubectl apply --dry-run=client needs a reachable cluster for its API discovery")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("(dry run)") == len(k8s())
