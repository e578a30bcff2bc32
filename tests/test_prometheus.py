"""A real Prometheus scraping a live rack with the shipped ``deploy/prometheus/prometheus.yml``,
and the shipped Grafana dashboard's queries run against what it scraped.

Why a real Prometheus: the scrape configuration (HTTPS, the rack's CA, a client
certificate, ``server_name``) and the dashboard's PromQL are only known to work once a
Prometheus has used them. The rack is served with ``--metrics-client-cert``, so a scrape
succeeds only through the certificate the shipped file names. The configuration run is
generated *from the shipped file*: only the target, the three file paths and the
``server_name`` are replaced by the test rack's. Three more jobs derived from it (no
client certificate, a name the certificate does not hold, a revoked certificate) must
fail, so the TLS settings are shown to be what lets the scrape through.

Grafana is not installed here: its variables (``$__range``, ``$__rate_interval``,
``$unit``) are replaced by what Grafana would send, and each query runs on Prometheus's
HTTP API. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509

from .conftest import ROOT, TEST_MANIFEST, Server, cli, free_port, sim, start_server, wait_for

SHIPPED_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "racklet-dashboard.json"
JOB = "racklet"  # the shipped job's name
SCRAPER = "prometheus"  # the account the shipped file's certificate belongs to
START_TIMEOUT = 30.0
# A scrape every 5 s (the shipped interval): two scrapes, with start-up, within this.
SCRAPES_TIMEOUT = 40.0
# What Grafana substitutes for its variables here: ranges that hold at least two scrapes,
# and the unit variable's "All" value (the dashboard's allValue).
GRAFANA_VALUES = {"__range": "1m", "__rate_interval": "1m", "unit": ".+"}
# Sensor noise (0.2 % per reading) and the Sensor's rounding: a scrape and a GET a moment
# apart agree to well within this (the rack is idle and settled).
POWER_TOLERANCE = 0.03
POWER_STATE_CODES = {"Off": 0, "PoweringOn": 1, "On": 2, "PoweringOff": 3}


def prometheus_binary() -> str:
    """The Prometheus server; a skip, not a failure, where the package is not installed."""
    path = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(path).exists():
        pytest.skip("needs Prometheus (Debian: apt-get install prometheus) for a real scrape")
    return path


def promtool_binary() -> str:
    """Prometheus's checker (same package); a skip where it is not installed."""
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(path).exists():
        pytest.skip("needs promtool (Debian: apt-get install prometheus)")
    return path


# -- PromQL and Grafana expressions --------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "bool", "offset", "atan2", "inf", "nan"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not inside a
    string, a label matcher, a range or a label list, not a keyword and not a function
    call. Why not a regex for ``racklet_\\w+``: a label may share a metric's name
    (the StateSet's ``racklet_unit_power_state`` label) and a label value may look like one."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        word = m.group(0)
        is_call = text[m.end():].lstrip().startswith("(")
        if word.lower() not in _KEYWORDS and not is_call:
            names.add(word)
    return names


def grafana_to_promql(expr: str, values: dict[str, str] = GRAFANA_VALUES) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would; an unknown variable is
    an error (a query the test cannot run as Grafana would is not checked)."""
    def value(m: re.Match) -> str:
        name = next(g for g in m.groups() if g)
        if name not in values:
            raise KeyError(f"Grafana variable ${name} in {expr!r} has no test value")
        return values[name]
    return _VARIABLE.sub(value, expr)


def panels(dashboard: dict) -> list[dict]:
    """Every panel, including those folded into rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


def panel_exprs(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def template_metric_names(dashboard: dict) -> set[str]:
    """The metrics the dashboard's query variables read (``label_values(METRIC, label)``)."""
    names = set()
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\(\s*([^,()]+?)\s*,\s*\w+\s*\)\s*", q)
        assert m, f"variable {var['name']}: not a label_values() query: {q!r}"
        names |= metric_names(m.group(1))
    return names


def load_dashboard() -> dict:
    """The shipped dashboard, read afresh (a test never sees another test's changes)."""
    return json.loads(DASHBOARD.read_text())


# -- the rack --------------------------------------------------------------------------------

def start_rack(tmp: Path) -> Server:
    """``serve`` with ``--metrics-client-cert``: every scrape must bring a client
    certificate, even on loopback."""
    return start_server(tmp, TEST_MANIFEST, workers=2, extra_args=("--metrics-client-cert",))


def certificate_for(server: Server, name: str, out: Path) -> tuple[Path, Path]:
    """A ReadOnly account ``name`` and its client certificate, as docs/monitoring.md says."""
    r = server.client().post(server.url + "/redfish/v1/AccountService/Accounts",
                             json={"UserName": name, "Password": f"{name}-never-used-password-1",
                                   "RoleId": "ReadOnly"})
    assert r.status_code == 201, r.text
    r = subprocess.run(cli() + ["cert", "issue", name, "--state-dir", str(server.state_dir), "--out", str(out)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return out / f"{name}.pem", out / f"{name}-key.pem"


def revoke(server: Server, name: str) -> None:
    """Revoke every certificate of account ``name`` (the rack's CLI, as an operator would)."""
    r = subprocess.run(cli() + ["cert", "revoke", name, "--state-dir", str(server.state_dir)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def certificate_dns_name(server: Server) -> str:
    """A DNS name the rack's HTTPS certificate holds, preferring the host name (what the
    shipped file's ``server_name`` stands for) over localhost."""
    cert = x509.load_pem_x509_certificate((server.state_dir / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    return next((d for d in dns if d != "localhost"), "localhost")


# -- the configuration Prometheus runs -------------------------------------------------------

def shipped_job(config: dict) -> dict:
    """The rack's job in the shipped file: the one every test configuration derives from."""
    jobs = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    assert len(jobs) == 1, f"the shipped file has no single job {JOB!r}"
    return jobs[0]


def derived_job(shipped: dict, name: str, target: str, **tls) -> dict:
    """The shipped job with another name, target and TLS files; a ``None`` removes a key."""
    job = json.loads(json.dumps(shipped))  # a deep copy of plain YAML data
    job["job_name"] = name
    job["static_configs"] = [{"targets": [target]}]
    for key, value in tls.items():
        if value is None:
            job["tls_config"].pop(key, None)
        else:
            job["tls_config"][key] = str(value)
    return job


@dataclass
class Prometheus:
    proc: subprocess.Popen
    url: str
    log: Path

    def api(self, path: str, **params) -> dict:
        with requests.Session() as s:
            s.trust_env = False  # loopback only: never a proxy from the environment
            r = s.get(self.url + path, params=params, timeout=10)
        assert r.status_code == 200, f"{path} {params}: {r.status_code} {r.text}"
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("/api/v1/query", query=expr)["result"]

    def targets(self) -> dict[str, dict]:
        """job name → its (single) active target."""
        return {t["labels"]["job"]: t for t in self.api("/api/v1/targets", state="active")["activeTargets"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_prometheus(tmp: Path, config: Path) -> Prometheus:
    """Prometheus on 127.0.0.1 with its storage in ``tmp``; lifecycle and admin APIs off
    (their defaults). Waits (bounded) for /-/ready."""
    port = free_port()
    log = tmp / "prometheus.log"
    args = [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {log.read_text()}")
        try:
            with requests.Session() as s:
                s.trust_env = False
                if s.get(prom.url + "/-/ready", timeout=2).status_code == 200:
                    return prom
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    prom.stop()
    raise AssertionError(f"prometheus did not become ready: {log.read_text()}")


@dataclass
class Rig:
    rack: Server
    prom: Prometheus
    config: Path
    server_name: str


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """A rack served with --metrics-client-cert and a Prometheus running the shipped job
    (plus three jobs that must fail), both stopped at the end."""
    prometheus_binary()
    tmp = tmp_path_factory.mktemp("prometheus")
    rack = start_rack(tmp / "rack")
    prom = None
    try:
        certs = tmp / "certs"
        cert, key = certificate_for(rack, SCRAPER, certs)
        revoked_cert, revoked_key = certificate_for(rack, "revoked-scraper", certs)
        revoke(rack, "revoked-scraper")
        name = certificate_dns_name(rack)
        target = f"127.0.0.1:{rack.metrics_port}"
        config = yaml.safe_load(SHIPPED_CONFIG.read_text())
        job = shipped_job(config)
        config["scrape_configs"] = [
            derived_job(job, JOB, target, ca_file=rack.ca, cert_file=cert, key_file=key, server_name=name),
            derived_job(job, "no-client-cert", target, ca_file=rack.ca, cert_file=None, key_file=None,
                        server_name=name),
            derived_job(job, "wrong-server-name", target, ca_file=rack.ca, cert_file=cert, key_file=key,
                        server_name="not-the-rack.invalid"),
            derived_job(job, "revoked-cert", target, ca_file=rack.ca, cert_file=revoked_cert,
                        key_file=revoked_key, server_name=name),
        ]
        path = tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        prom = start_prometheus(tmp, path)
        yield Rig(rack, prom, path, name)
    finally:
        if prom is not None:
            prom.stop()
        rack.stop()


def scraped(rig: Rig, job: str = JOB) -> dict:
    """Wait (bounded) until ``job`` has been scraped once, and return its target."""
    def done():
        t = rig.prom.targets().get(job)
        return t if t and t["health"] != "unknown" else None
    return wait_for(done, f"a first scrape of job {job}", timeout=SCRAPES_TIMEOUT)


def scraped_twice(rig: Rig) -> None:
    """Wait (bounded) until the rack has been scraped at least twice (a rate() needs two)."""
    wait_for(lambda: rig.prom.query(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 2'),
             "two scrapes of the rack", timeout=SCRAPES_TIMEOUT)


def value(sample: dict) -> float:
    """The number of an instant-vector sample (the API sends [timestamp, "string"])."""
    return float(sample["value"][1])


# -- the expression helpers themselves ----------------------------------------------------

@pytest.mark.parametrize("expr, names", [
    ("racklet_rack_power_watts", {"racklet_rack_power_watts"}),
    ('sum by (unit) (rate(racklet_a_total{unit=~"racklet_b", x="y}"}[5m])) / 3600', {"racklet_a_total"}),
    ("histogram_quantile(0.99, sum by (le, url_rule) (rate(m_bucket[1m])))", {"m_bucket"}),
    ('1 * s{s="On"} or 2 * s{s="Off"} unless on (unit) group_left (x) t offset 5m', {"s", "t"}),
    ("sum(x) without (unit) > bool 3", {"x"}),
    ('rate(foo[5m:30s]) * 1e3', {"foo"}),
    ("metric:recorded_rule", {"metric:recorded_rule"}),
    ('{__name__="racklet_rack_power_watts"}', set()),
    ("vector(1) + time()", set()),
])
def test_metric_names_finds_selected_metrics_only(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr, promql", [
    ("rate(x[$__rate_interval])", "rate(x[1m])"),
    ('x{unit=~"${unit}"}', 'x{unit=~".+"}'),
    ('x{unit=~"${unit:regex}"}', 'x{unit=~".+"}'),
    ('increase(x{unit=~"[[unit]]"}[$__range])', 'increase(x{unit=~".+"}[1m])'),
    ("x", "x"),
])
def test_grafana_variables_become_promql(expr, promql):
    assert grafana_to_promql(expr) == promql


@pytest.mark.parametrize("expr", ["rate(x[$__interval])", 'x{rack="$rack"}', "x{a=\"${nope:csv}\"}"])
def test_an_unknown_grafana_variable_is_an_error(expr):
    with pytest.raises(KeyError):
        grafana_to_promql(expr)


def test_label_values_queries_must_be_label_values():
    board = {"templating": {"list": [{"name": "u", "type": "query", "query": "query_result(up)"}]}}
    with pytest.raises(AssertionError):
        template_metric_names(board)
    board["templating"]["list"][0]["query"] = {"query": "label_values(racklet_unit_present, unit)"}
    assert template_metric_names(board) == {"racklet_unit_present"}


# -- the shipped files, without a rack -----------------------------------------------------

def test_shipped_config_passes_promtool_syntax_check():
    r = subprocess.run([promtool_binary(), "check", "config", "--syntax-only", str(SHIPPED_CONFIG)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shipped_job_scrapes_over_https_with_a_client_certificate():
    job = shipped_job(yaml.safe_load(SHIPPED_CONFIG.read_text()))
    assert job["scheme"] == "https" and job["metrics_path"] == "/metrics"
    assert job["scrape_interval"] == "5s"
    tls = job["tls_config"]
    assert {"ca_file", "cert_file", "key_file", "server_name"} <= tls.keys()
    assert not tls.get("insecure_skip_verify", False)
    # the three files are the ones `cert issue prometheus` writes and the rack's CA
    assert Path(tls["cert_file"]).name == f"{SCRAPER}.pem"
    assert Path(tls["key_file"]).name == f"{SCRAPER}-key.pem"
    assert Path(tls["ca_file"]).name == "ca.pem"


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable():
    board = load_dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(board):
        assert p["targets"], f"panel {p['title']!r} has no query"
        for source in [p["datasource"]] + [t["datasource"] for t in p["targets"]]:
            assert source == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]


def test_dashboard_panels_cover_the_rack():
    """The panels the monitoring page promises, found by the metrics they read."""
    used = set().union(*(metric_names(grafana_to_promql(e)) for _, e in panel_exprs(load_dashboard())))
    assert {"racklet_rack_power_watts", "racklet_rack_power_limit_watts", "racklet_unit_power_watts",
            "racklet_unit_energy_joules_total", "racklet_unit_temperature_celsius",
            "racklet_rack_temperature_celsius", "racklet_unit_power_state", "racklet_rack_fan_speed_rpm",
            "racklet_http_request_total", "racklet_http_request_duration_seconds_bucket"} <= used


def test_dashboard_panels_do_not_overlap():
    cells = {}
    for p in panels(load_dashboard()):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


# -- a real Prometheus scraping the rack ---------------------------------------------------

def test_generated_config_passes_the_full_promtool_check(rig):
    """With the files in place, the complete check (it opens the TLS files) passes too."""
    r = subprocess.run([promtool_binary(), "check", "config", str(rig.config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_shipped_job_scrapes_the_rack(rig):
    target = scraped(rig)
    assert target["health"] == "up", f"{target['lastError']}\n{rig.prom.log.read_text()}"
    assert target["scrapeUrl"] == f"https://127.0.0.1:{rig.rack.metrics_port}/metrics"
    assert target["scrapeInterval"] == "5s"


@pytest.mark.parametrize("job", ["no-client-cert", "wrong-server-name", "revoked-cert"])
def test_a_scrape_without_the_right_tls_settings_fails(rig, job):
    target = scraped(rig, job)
    assert target["health"] == "down" and target["lastError"]
    if job == "wrong-server-name":
        assert "certificate" in target["lastError"] and "not-the-rack.invalid" in target["lastError"]
    if job == "revoked-cert":
        assert "403" in target["lastError"]


def test_rack_power_in_prometheus_is_the_redfish_sensor(rig):
    scraped(rig)
    result = wait_for(lambda: rig.prom.query(f'racklet_rack_power_watts{{job="{JOB}"}}'),
                      "racklet_rack_power_watts in Prometheus", timeout=SCRAPES_TIMEOUT)
    assert len(result) == 1
    in_prometheus = value(result[0])
    sensor = rig.rack.get("/redfish/v1/Chassis/Rack/Sensors/Power").json()
    assert sensor["ReadingUnits"] == "W" and sensor["Reading"] > 0
    assert in_prometheus == pytest.approx(sensor["Reading"], rel=POWER_TOLERANCE)


def test_every_unit_of_the_rack_is_in_prometheus(rig):
    scraped(rig)
    members = rig.rack.get("/redfish/v1/Systems").json()["Members"]
    units = {m["@odata.id"].rsplit("/", 1)[-1] for m in members}
    present = {s["metric"]["unit"]: value(s) for s in rig.prom.query(f'racklet_unit_present{{job="{JOB}"}}')}
    assert set(present) == units
    for unit, flag in present.items():
        chassis = rig.rack.get(f"/redfish/v1/Chassis/{unit}").json()
        assert flag == (0.0 if chassis["Status"]["State"] == "Absent" else 1.0), unit


def test_dashboard_queries_name_only_scraped_metrics(rig):
    scraped(rig)
    names = set(rig.prom.api("/api/v1/label/__name__/values", **{"match[]": f'{{job="{JOB}"}}'}))
    board = load_dashboard()
    for title, expr in panel_exprs(board):
        used = metric_names(grafana_to_promql(expr))
        assert used, f"panel {title!r}: {expr!r} names no metric"
        assert used <= names, f"panel {title!r}: {sorted(used - names)} not scraped from the rack"
    assert template_metric_names(board) <= names


def test_dashboard_queries_return_data(rig):
    """Each query, as Grafana would send it, is valid PromQL and has a series to draw."""
    scraped_twice(rig)
    for title, expr in panel_exprs(load_dashboard()):
        result = rig.prom.query(grafana_to_promql(expr))
        assert result, f"panel {title!r}: {expr!r} returned nothing"


def test_api_panels_show_the_requests_made(rig):
    """Requests to the API show in the request-rate panel (status 200) and give the
    latency panel a finite p99 for their route."""
    scraped(rig)
    client = rig.rack.client()
    for _ in range(20):
        assert client.get(rig.rack.url + "/redfish/v1/Systems").status_code == 200
    exprs = [grafana_to_promql(e) for _, e in panel_exprs(load_dashboard())]
    rate_expr = next(e for e in exprs if "racklet_http_request_total" in metric_names(e))
    p99_expr = next(e for e in exprs if "racklet_http_request_duration_seconds_bucket" in metric_names(e)
                    and "url_rule" in e)
    rates = wait_for(lambda: {s["metric"]["status"]: value(s) for s in rig.prom.query(rate_expr)
                              if value(s) > 0}, "a request rate above 0", timeout=SCRAPES_TIMEOUT)
    assert rates.get("200", 0.0) > 0
    p99 = {s["metric"]["url_rule"]: value(s) for s in rig.prom.query(p99_expr)}
    assert 0 < p99["/redfish/v1/Systems"] < 10.0


def test_power_state_panel_shows_each_units_power_state(rig):
    scraped(rig)
    expr = next(e for _, e in panel_exprs(load_dashboard()) if "racklet_unit_power_state" in e)
    codes = {s["metric"]["unit"]: value(s) for s in rig.prom.query(grafana_to_promql(expr))}
    systems = rig.rack.get("/redfish/v1/Systems?$expand=.").json()["Members"]
    assert codes == {s["Id"]: POWER_STATE_CODES[s["PowerState"]] for s in systems}
    assert set(codes.values()) == {0, 2}, "the test rack has units on and an empty tray (off)"
    mappings = next(p for p in panels(load_dashboard()) if p["targets"][0]["expr"] == expr)[
        "fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {m["text"]: int(code) for code, m in mappings.items()} == POWER_STATE_CODES


@pytest.mark.parametrize("metric, sensor", [
    ("racklet_unit_temperature_celsius", "/redfish/v1/Chassis/Unit1/Sensors/Temperature"),
    ("racklet_rack_temperature_celsius", "/redfish/v1/Chassis/Rack/Sensors/Temperature"),
])
def test_temperature_threshold_lines_are_the_sensors_thresholds(rig, metric, sensor):
    board = load_dashboard()
    panel = next(p for p in panels(board) if any(metric in metric_names(grafana_to_promql(t["expr"]))
                                                  for t in p["targets"]))
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in ("line", "line+area", "dashed", "dashed+area")
    lines = [s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None]
    thresholds = rig.rack.get(sensor).json()["Thresholds"]
    assert lines == sorted(t["Reading"] for t in thresholds.values())


def unit_power(rig: Rig) -> dict[str, float]:
    """unit → its power, as Prometheus last scraped it."""
    return {s["metric"]["unit"]: value(s) for s in rig.prom.query(f'racklet_unit_power_watts{{job="{JOB}"}}')}


def test_a_load_change_reaches_prometheus(rig):
    """What the monitoring page's screenshot shows: `sim load Unit1 1.0` (idle 2.7 W, busy
    6.6 W) raises Unit1's power in Prometheus within a few scrapes; the other units stay
    where they were. Last in this file: it changes the rack."""
    scraped(rig)
    before = unit_power(rig)
    sim(rig.rack, "load", "Unit1", "1.0")
    after = wait_for(lambda: (p := unit_power(rig)).get("Unit1", 0.0) > before["Unit1"] + 2.0 and p,
                     "Unit1's higher power in Prometheus", timeout=SCRAPES_TIMEOUT)
    assert after.keys() == before.keys()
    for unit in before.keys() - {"Unit1"}:
        assert after[unit] == pytest.approx(before[unit], rel=POWER_TOLERANCE), unit
