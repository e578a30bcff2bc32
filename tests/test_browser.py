"""The rack in a browser: the page shell, its assets and headers, and the pages themselves
driven in real (Debian) Chromium through Playwright.

Chromium is told to trust the rack's own HTTPS certificate by its public key
(``--ignore-certificate-errors-spki-list`` with the SHA-256 of the server certificate's
SubjectPublicKeyInfo): a command-line flag cannot add a CA, but this pins exactly the key
the rack serves, so the browser context keeps ``ignore_https_errors=False`` and any other
certificate is still refused.

Screenshots go to a temporary folder (printed on failure); with
``RACKLET_DOC_SCREENSHOTS=1`` the two documentation pictures in docs/img/ are rewritten.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from redfish_racklet.app import is_page_path
from redfish_racklet.resources.browser import etag_matches, stream_csp
from redfish_racklet.web import PAGE_CSP, page_csp, prefers_html

from .conftest import ADMIN_PASSWORD, ROOT, cli, sim, start_server

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAVIGATION_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
VIEWER = ("viewer", "viewer-password-1")
DOC_SHOTS = os.environ.get("RACKLET_DOC_SCREENSHOTS") == "1"
UNITS = ["Unit1", "Unit2", "Unit3", "Unit4", "Unit5"]
WAIT_MS = 15_000


# -- content negotiation, without a browser ---------------------------------------------

@pytest.mark.parametrize("accept", [
    NAVIGATION_ACCEPT,
    "text/html",
    "text/html;q=0.9, application/json;q=0.5",
    "application/json;q=0.1, text/html",
    "text/html;q=1, application/json;q=0.999",
    "application/json;q=0.2, text/html;level=1;q=0.3",
])
def test_a_browser_navigation_prefers_html(accept):
    assert prefers_html(accept)


@pytest.mark.parametrize("accept", [
    None, "", "*/*", "application/json", "application/json;charset=utf-8", "application/*",
    "text/html;q=0.5, application/json",            # JSON ranked higher
    "text/html;q=0.8, */*;q=0.8",                    # a tie keeps JSON
    "text/html;q=0, */*",                            # HTML refused outright
    "text/html;q=abc, application/json;q=0.1",      # a malformed q counts as 0
    "text/html;q=7, application/json;q=0.1",        # out of range: 0
    "application/xml, text/htmlx",                   # no text/html at all
    "text/plain, */*;q=0.1",
])
def test_json_clients_are_not_browsers(accept):
    assert not prefers_html(accept)


def test_pages_are_only_the_root_and_the_redfish_tree():
    assert all(is_page_path(p) for p in ("/", "/redfish", "/redfish/", "/redfish/v1/Systems/Unit1"))
    assert not any(is_page_path(p) for p in ("", "/static/racklet.js", "/redfishy", "/metrics", "/favicon.ico",
                                             "//redfish/v1"))


def test_if_none_match_of_an_asset():
    tag = '"abc"'
    assert etag_matches('"abc"', tag) and etag_matches('"x", "abc"', tag) and etag_matches("*", tag)
    assert etag_matches('W/"abc"', tag)  # weak comparison, as for a GET
    assert not any(etag_matches(h, tag) for h in (None, "", '"abcd"', "abc", '"ab"c"'))


class ShellParser(html.parser.HTMLParser):
    """Collects what would break the no-inline rule: inline script bodies, <style>
    elements, style= and on*= attributes; and the script and style sheet sources."""

    def __init__(self):
        super().__init__()
        self.inline, self.scripts, self.sheets, self._in_script = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        bad = [a for a in attrs if a == "style" or a.startswith("on")]
        if bad or tag == "style":
            self.inline.append((tag, bad))
        if tag == "script":
            self.scripts.append(attrs.get("src"))
            self._in_script = True
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.sheets.append(attrs.get("href"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(("script", data.strip()[:40]))


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    """A server of this module's own (the tests power units off and pull one out), with a
    ReadOnly account."""
    srv = start_server(tmp_path_factory.mktemp("browser"))
    r = srv.client().post(srv.url + "/redfish/v1/AccountService/Accounts",
                          json={"UserName": VIEWER[0], "Password": VIEWER[1], "RoleId": "ReadOnly"})
    assert r.status_code == 201, r.text
    srv.tmp = tmp_path_factory.mktemp("browser-work")
    yield srv
    srv.stop()


def shell_csp(rack) -> str:
    """The page CSP with the SSE listener's origin (for the host name the tests use)."""
    return page_csp(f"https://127.0.0.1:{rack.sse_port}")


def test_the_page_csp_names_the_sse_listener():
    assert stream_csp("rack.example:8443", "8444") == page_csp("https://rack.example:8444")
    assert "connect-src 'self' https://rack.example:8444;" in stream_csp("Rack.Example", "8444")
    assert "connect-src 'self' https://[::1]:8444;" in stream_csp("[::1]:8443", "8444")
    assert "connect-src 'self' https://rack;" in stream_csp("rack:8443", "443")
    # only connect-src widens, and by one origin
    directives = lambda csp: dict(d.strip().split(" ", 1) for d in csp.split(";"))  # noqa: E731
    assert directives(stream_csp("rack:8443", "8444")) == {**directives(PAGE_CSP),
                                                           "connect-src": "'self' https://rack:8444"}


@pytest.mark.parametrize("host, port", [
    ("rack:8443", None), ("rack:8443", ""), ("rack:8443", "0"), ("rack:8443", "65536"), ("rack:8443", "84a4"),
    ("rack:8443", "-1"), (None, "8444"), ("", "8444"), ("rack; script-src *", "8444"), ("rack *", "8444"),
    ("'unsafe-inline'", "8444"), ("rack\r\nX-Evil: 1", "8444"), ("[::1", "8444"),
])
def test_no_listener_or_a_strange_host_keeps_the_plain_page_csp(host, port):
    assert stream_csp(host, port) == PAGE_CSP


def test_the_shell_is_served_to_browsers_only(rack):
    anon = rack.anonymous()
    for path in ("/", "/redfish", "/redfish/v1", "/redfish/v1/Systems/Unit1", "/redfish/v1/NoSuchThing"):
        r = anon.get(rack.url + path, headers={"Accept": NAVIGATION_ACCEPT})
        assert r.status_code == 200, path
        assert r.headers["Content-Type"] == "text/html; charset=utf-8", path
        assert r.headers["Content-Security-Policy"] == shell_csp(rack)
        assert len([k for k in r.raw.headers.keys() if k.lower() == "content-security-policy"]) == 1
        assert r.headers["Cache-Control"] == "no-store" and "Accept" in r.headers["Vary"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "Systems" not in r.text and "Unit1" not in r.text  # no data in the page
    head = anon.head(rack.url + "/redfish/v1/Systems", headers={"Accept": NAVIGATION_ACCEPT})
    assert head.status_code == 200 and head.headers["Content-Type"].startswith("text/html") and not head.content
    # a JSON client on the same URIs: JSON, the strict CSP, and a login still needed
    for accept in (None, "*/*", "application/json", "text/html;q=0.5, application/json"):
        headers = {"Accept": accept} if accept else {}
        r = rack.client().get(rack.url + "/redfish/v1/Systems/Unit1", headers=headers)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), accept
        assert r.json()["Id"] == "Unit1"
        assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert anon.get(rack.url + "/redfish/v1/Systems/Unit1", headers=headers).status_code == 401
    # only GET and HEAD navigate: a POST with a browser's Accept is an API request as ever
    r = anon.post(rack.url + "/redfish/v1/Systems/Unit1/Actions/ComputerSystem.Reset",
                  headers={"Accept": NAVIGATION_ACCEPT}, json={"ResetType": "ForceOff"})
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/json")
    # outside "/" and the Redfish tree there is no page
    r = anon.get(rack.url + "/favicon.ico", headers={"Accept": NAVIGATION_ACCEPT})
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")


def test_the_shell_has_nothing_inline(rack):
    r = rack.anonymous().get(rack.url + "/", headers={"Accept": NAVIGATION_ACCEPT})
    assert r.text.lower().startswith("<!doctype html>")
    assert '<html lang="en">' in r.text and 'name="viewport"' in r.text and "<noscript>" in r.text
    parser = ShellParser()
    parser.feed(r.text)
    assert parser.inline == []
    assert parser.scripts == ["/static/racklet.js"] and parser.sheets == ["/static/racklet.css"]
    csp = dict(d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == f"'self' https://127.0.0.1:{rack.sse_port}"  # the event stream, and only it
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert "unsafe" not in r.headers["Content-Security-Policy"]


def test_the_assets(rack):
    anon = rack.anonymous()
    total = 0
    for name, kind in (("racklet.js", "text/javascript"), ("racklet.css", "text/css")):
        r = anon.get(rack.url + "/static/" + name)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind)
        assert r.content == (ROOT / "redfish_racklet" / "static" / name).read_bytes()
        assert "no-cache" in r.headers["Cache-Control"] and r.headers["Content-Security-Policy"] == PAGE_CSP
        tag = r.headers["ETag"]
        again = anon.get(rack.url + "/static/" + name, headers={"If-None-Match": tag})
        assert again.status_code == 304 and not again.content and again.headers["ETag"] == tag
        other = anon.get(rack.url + "/static/" + name, headers={"If-None-Match": '"not-it"'})
        assert other.status_code == 200 and other.content == r.content
        total += len(r.content)
        # nothing from another origin, nothing that turns data into markup
        text = r.text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
        assert "innerHTML" not in text and "eval(" not in text and "document.write" not in text
    assert total < 40 * 1024
    for bad in ("nope.js", "..%2fapp.py", "racklet.JS", "%2e%2e", "racklet.js%00"):
        r = anon.get(rack.url + "/static/" + bad)
        assert r.status_code == 404, bad
        assert r.headers["Content-Type"].startswith("application/json"), bad
    r = anon.post(rack.url + "/static/racklet.js", data=b"x")
    assert r.status_code == 405


# -- in Chromium -------------------------------------------------------------------------

def spki_pin(cert_pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate: Chromium's pin format."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser(rack):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    pin = spki_pin((rack.state_dir / "server.pem").read_bytes())
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=BROWSER_ARGS + [f"--ignore-certificate-errors-spki-list={pin}"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Watched:
    """A page and what its console said (CSP violations land there)."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def csp_reports(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]


@pytest.fixture
def page(browser, rack):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=False)
    watched = Watched(ctx.new_page())
    yield watched
    ctx.close()
    assert watched.errors == [], watched.errors


def log_in(w: Watched, rack, user: str = "admin", password: str = ADMIN_PASSWORD, path: str = "/"):
    w.page.goto(rack.url + path)
    w.page.fill("#login-user", user)
    w.page.fill("#login-password", password)
    w.page.click("#login button[type=submit]")
    w.page.wait_for_selector("#logout", timeout=WAIT_MS)


def tray(w: Watched, unit: str, part: str):
    return w.page.locator(f'li.tray[data-unit="{unit}"] {part}')


def expect(locator):
    """Playwright's retrying assertions (imported late: the module skips without it)."""
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(locator)


def wait_text(locator, text):
    expect(locator).to_have_text(text, timeout=WAIT_MS)


def save(w: Watched, shots: Path, name: str, doc: str | None = None) -> None:
    w.page.screenshot(path=str(shots / name), full_page=True)
    if doc and DOC_SHOTS:
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots / name, ROOT / "docs" / "img" / doc)


def test_a_wrong_password_keeps_the_login_form(page, rack):
    page.page.goto(rack.url + "/")
    page.page.fill("#login-user", "admin")
    page.page.fill("#login-password", "not-the-password")
    page.page.click("#login button[type=submit]")
    wait_text(page.page.locator("#login .msg"), re.compile(r"^Not logged in: 401 .*authorization error"))
    assert page.page.locator("#logout").count() == 0
    assert page.page.evaluate("sessionStorage.getItem('racklet.token')") is None


def test_log_in_and_see_every_unit(page, rack, shots):
    log_in(page, rack)
    w = page.page
    wait_text(tray(page, "Unit1", ".presence"), "Present")
    assert w.locator("li.tray").evaluate_all("els => els.map(e => e.dataset.unit)") == UNITS[::-1]  # top slot first
    for unit in UNITS[:4]:
        wait_text(tray(page, unit, ".power-state"), "On")
        wait_text(tray(page, unit, ".health"), "OK")
        expect(tray(page, unit, ".watts")).to_have_text(re.compile(r"^\d+\.\d\d W$"), timeout=WAIT_MS)
        expect(tray(page, unit, ".temperature")).to_have_text(re.compile(r"^\d+\.\d °C$"),
                                                            timeout=WAIT_MS)
    wait_text(tray(page, "Unit5", ".presence"), "Absent")
    assert tray(page, "Unit5", "button").evaluate_all("bs => bs.every(b => b.disabled)")
    wait_text(w.locator("#live-mode"), "live (events)")  # the page follows the event stream
    assert "admin (Administrator)" in w.locator(".who").inner_text()
    # the token lives in sessionStorage, not in a cookie
    assert w.evaluate("sessionStorage.getItem('racklet.token')")
    assert w.context.cookies() == []
    # the rack's power, its budget, a plot per unit, the firmware and the event log
    limit = rack.client().get(rack.url + "/redfish/v1/Chassis/Rack/Controls/PowerLimit").json()["SetPoint"]
    w.wait_for_function(f"document.getElementById('budget').max === {limit}", timeout=WAIT_MS)
    w.wait_for_selector('figure[data-plot="Unit1"] polyline[points*=","]', timeout=WAIT_MS)
    w.wait_for_selector('figure[data-plot="Rack"]', timeout=WAIT_MS)
    w.wait_for_selector(".firmware tbody tr", timeout=WAIT_MS)
    w.wait_for_selector(".events tbody tr", timeout=WAIT_MS)
    w.wait_for_timeout(1500)  # a few polls, so the plots have points to show
    save(page, shots, "dashboard.png", "dashboard.png")
    assert page.csp_reports() == []


def test_power_a_unit_off_and_watch_it_change(page, rack):
    log_in(page, rack)
    w = page.page
    wait_text(tray(page, "Unit2", ".power-state"), "On")
    w.evaluate("window.racklet_test_mark = 'same page'")
    tray(page, "Unit2", "button.off").click()
    wait_text(tray(page, "Unit2", ".power-state"), "Off")
    assert w.evaluate("window.racklet_test_mark") == "same page"  # no reload
    assert rack.client().get(rack.url + "/redfish/v1/Systems/Unit2").json()["PowerState"] == "Off"
    assert tray(page, "Unit2", "button.off").is_disabled() and tray(page, "Unit2", "button.on").is_enabled()
    tray(page, "Unit2", "button.on").click()
    wait_text(tray(page, "Unit2", ".power-state"), "On")
    # identify: the LED follows the button
    tray(page, "Unit2", "button.identify-toggle").click()
    wait_text(tray(page, "Unit2", ".identify"), "On")
    assert rack.client().get(rack.url + "/redfish/v1/Systems/Unit2").json()["LocationIndicatorActive"] is True
    assert tray(page, "Unit2", "button.identify-toggle").get_attribute("aria-pressed") == "true"
    tray(page, "Unit2", "button.identify-toggle").click()
    wait_text(tray(page, "Unit2", ".identify"), "Off")
    # and the event log shows what happened, newest first
    w.wait_for_function("[...document.querySelectorAll('.events tbody tr')].slice(0, 8)"
                        ".some(r => r.textContent.includes('/redfish/v1/Systems/Unit2') "
                        "&& r.textContent.includes('powered off'))", timeout=WAIT_MS)
    assert w.locator(".events tbody tr").count() <= 20


def test_unplug_a_unit_and_watch_it_go_absent(page, rack):
    log_in(page, rack)
    wait_text(tray(page, "Unit3", ".presence"), "Present")
    sim(rack, "unplug", "Unit3")
    try:
        wait_text(tray(page, "Unit3", ".presence"), "Absent")
        assert "absent" in page.page.locator('li.tray[data-unit="Unit3"]').get_attribute("class").split()
        assert tray(page, "Unit3", "button").evaluate_all("bs => bs.every(b => b.disabled)")
    finally:
        sim(rack, "plug", "Unit3")
    wait_text(tray(page, "Unit3", ".presence"), "Present")


def sse_uri(rack) -> str:
    return f"https://127.0.0.1:{rack.sse_port}/redfish/v1/EventService/SSE"


def test_live_updates_come_through_the_event_stream(page, rack):
    w = page.page
    streams = []
    w.on("request", lambda r: streams.append(r) if r.url == sse_uri(rack) and r.method == "GET" else None)
    log_in(page, rack)
    wait_text(w.locator("#live-mode"), "live (events)")
    wait_text(tray(page, "Unit4", ".presence"), "Present")
    assert streams and streams[0].all_headers().get("x-auth-token") == w.evaluate(
        "sessionStorage.getItem('racklet.token')")
    # from now on no poll can answer: only the event path can show the change
    polls = re.compile(r"/redfish/v1/Systems\?")
    w.route(polls, lambda route: route.abort())
    try:
        sim(rack, "unplug", "Unit4")
        expect(tray(page, "Unit4", ".presence")).to_have_text("Absent", timeout=2000)  # the slow poll: 5 s
        assert tray(page, "Unit4", "button").evaluate_all("bs => bs.every(b => b.disabled)")
        assert w.locator("#live-mode").inner_text() == "live (events)"
    finally:
        w.unroute(polls)
        sim(rack, "plug", "Unit4")
    wait_text(tray(page, "Unit4", ".presence"), "Present")
    assert page.csp_reports() == []


def test_without_the_stream_the_page_polls(page, rack):
    w = page.page
    w.route(sse_uri(rack), lambda route: route.abort())
    log_in(page, rack)
    wait_text(tray(page, "Unit4", ".presence"), "Present")
    wait_text(w.locator("#live-mode"), "polling")
    sim(rack, "unplug", "Unit4")
    try:
        wait_text(tray(page, "Unit4", ".presence"), "Absent")
        assert w.locator("#live-mode").inner_text() == "polling"
    finally:
        sim(rack, "plug", "Unit4")
    wait_text(tray(page, "Unit4", ".presence"), "Present")


def test_follow_links_through_the_browsable_api(page, rack, shots):
    log_in(page, rack, path="/redfish/v1")
    w = page.page
    w.wait_for_selector("pre.json")
    assert w.locator("h1").inner_text() == "Racklet Redfish Service"
    w.click('pre.json a.j-link[href="/redfish/v1/Systems"]')
    w.wait_for_url(rack.url + "/redfish/v1/Systems")
    w.click('pre.json a.j-link[href="/redfish/v1/Systems/Unit1"]')
    w.wait_for_url(rack.url + "/redfish/v1/Systems/Unit1")
    w.wait_for_selector("pre.json .j-key")
    assert w.locator("h1").inner_text() == "Compute unit in slot 1"
    crumbs = w.locator("nav.crumbs a").evaluate_all("as => as.map(a => [a.textContent, a.getAttribute('href')])")
    assert crumbs == [["redfish", "/redfish"], ["v1", "/redfish/v1"], ["Systems", "/redfish/v1/Systems"],
                      ["Unit1", "/redfish/v1/Systems/Unit1"]]
    # highlighted: keys, strings, numbers, booleans, null each with their class
    for cls, text in ((".j-key", '"PowerState"'), (".j-str", '"Raspberry Pi Ltd"'), (".j-bool", "false"),
                      (".j-num", "4"), (".j-null", "null")):
        assert w.locator(f"pre.json {cls}", has_text=text).count() >= 1, cls
    # the action: its target, a select of the allowed values, and a result
    form = w.locator("form.action", has=w.locator("h3", has_text="ComputerSystem.Reset"))
    values = form.locator("select[name=ResetType] option").evaluate_all("os => os.map(o => o.value)")
    doc = rack.client().get(rack.url + "/redfish/v1/Systems/Unit1").json()
    assert values == doc["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]
    assert form.locator(".target a").get_attribute("href") == "/redfish/v1/Systems/Unit1/Actions/ComputerSystem.Reset"
    save(page, shots, "browsable-api.png", "browsable-api.png")
    form.locator("select[name=ResetType]").select_option("On")  # already on: harmless
    form.locator("button[type=submit]").click()
    expect(form.locator(".result")).to_have_text(re.compile(r"^20[04] "), timeout=WAIT_MS)
    # a bad value shows the service's own refusal
    w.evaluate("document.querySelector('select[name=ResetType]').append(new Option('Sideways', 'Sideways'))")
    form.locator("select[name=ResetType]").select_option("Sideways")
    form.locator("button[type=submit]").click()
    expect(form.locator(".result")).to_have_text(re.compile(r"^400 .*Sideways"), timeout=WAIT_MS)
    # back up the breadcrumb, and on to the Chassis through Links
    w.click('nav.crumbs a[href="/redfish/v1/Systems"]')
    w.wait_for_url(rack.url + "/redfish/v1/Systems")
    w.wait_for_selector('pre.json a.j-link[href="/redfish/v1/Systems/Unit5"]')
    # a URI the service does not serve: the page says so
    w.goto(rack.url + "/redfish/v1/NoSuchThing")
    w.wait_for_selector(".msg.error")
    assert w.locator(".msg.error").inner_text().startswith("404 ")
    # the rack's header link leads back to the dashboard
    w.click("header nav a[href='/']")
    w.wait_for_selector("li.tray", timeout=WAIT_MS)
    assert page.csp_reports() == []


def test_upload_a_signed_bundle_and_see_the_task_finish(page, rack):
    tmp = rack.tmp
    run = lambda *a: subprocess.run(cli() + list(a), check=True, capture_output=True)  # noqa: E731
    run("bundle", "keygen", "--out", str(tmp / "key"))
    run("keys", "add", str(tmp / "key" / "signing-key.pub.pem"), "--state-dir", str(rack.state_dir))
    (tmp / "bmc.bin").write_bytes(b"bmc 2.0.0 from the browser\n")
    run("bundle", "create", str(tmp / "bmc.bin"), "--out", str(tmp / "bmc.rkb"), "--component", "bmc",
        "--compatible", "racklet-sim", "--version", "2.0.0", "--security-version", "0")
    run("bundle", "sign", str(tmp / "bmc.rkb"), "--key", str(tmp / "key" / "signing-key.pem"))
    log_in(page, rack)
    w = page.page
    w.wait_for_selector('#bundle-target option[value="/redfish/v1/Managers/Unit1-BMC"]', state="attached",
                        timeout=WAIT_MS)
    w.set_input_files("#bundle-file", str(tmp / "bmc.rkb"))
    w.select_option("#bundle-target", "/redfish/v1/Managers/Unit1-BMC")
    w.click("#upload button[type=submit]")
    expect(w.locator(".task-state")).to_have_text(re.compile(r"^Completed"), timeout=30_000)
    assert w.locator("#task-progress").evaluate("p => p.value") == 100
    w.wait_for_function("[...document.querySelectorAll('.firmware tbody tr')].some(r => "
                        "r.textContent.includes('Unit1 BMC firmware') && r.textContent.includes('2.0.0 (active)'))",
                        timeout=WAIT_MS)
    assert rack.client().get(rack.url + "/redfish/v1/Managers/Unit1-BMC").json()["FirmwareVersion"] == "2.0.0"
    # a file that is no bundle: the service's refusal, and the button usable again
    (tmp / "junk.rkb").write_bytes(b"not a bundle at all")
    w.set_input_files("#bundle-file", str(tmp / "junk.rkb"))
    w.click("#upload button[type=submit]")
    expect(w.locator(".task-state")).to_have_text(re.compile(r"^4\d\d "), timeout=WAIT_MS)
    expect(w.locator("#upload button[type=submit]")).to_be_enabled()


def test_a_read_only_user_sees_disabled_controls(page, rack):
    log_in(page, rack, *VIEWER)
    w = page.page
    wait_text(tray(page, "Unit1", ".power-state"), "On")
    assert "viewer (ReadOnly)" in w.locator(".who").inner_text()
    buttons = w.locator("li.tray button")
    assert buttons.count() == 4 * len(UNITS)
    assert buttons.evaluate_all("bs => bs.every(b => b.disabled && b.title.includes('ConfigureComponents'))")
    assert w.locator("#upload button[type=submit]").is_disabled() and w.locator("#bundle-file").is_disabled()
    w.goto(rack.url + "/redfish/v1/Systems/Unit1")
    w.wait_for_selector("form.action button[type=submit]")
    assert w.locator("form.action button[type=submit]").is_disabled()
    # the page only reflects what the service enforces
    r = requests.post(rack.url + "/redfish/v1/Systems/Unit1/Actions/ComputerSystem.Reset", verify=rack.ca,
                      headers={"X-Auth-Token": w.evaluate("sessionStorage.getItem('racklet.token')")},
                      json={"ResetType": "ForceOff"})
    assert r.status_code == 403
    # logging out ends the session on the service too
    token = w.evaluate("sessionStorage.getItem('racklet.token')")
    w.click("#logout")
    w.wait_for_selector("#login")
    assert w.evaluate("sessionStorage.getItem('racklet.token')") is None
    r = requests.get(rack.url + "/redfish/v1/Systems", verify=rack.ca, headers={"X-Auth-Token": token})
    assert r.status_code == 401


def test_an_ended_session_brings_back_the_login_form(page, rack):
    log_in(page, rack)
    w = page.page
    w.wait_for_selector("li.tray")
    session = w.evaluate("sessionStorage.getItem('racklet.session')")
    assert rack.client().delete(rack.url + session).status_code in (200, 204)
    w.wait_for_selector("#login", timeout=WAIT_MS)  # the next poll got a 401
    assert "log in again" in w.locator("#login .msg").inner_text()


def test_the_csp_holds_in_the_browser(page, rack):
    log_in(page, rack)
    w = page.page
    w.wait_for_selector("li.tray")
    w.goto(rack.url + "/redfish/v1/Chassis/Rack")
    w.wait_for_selector("pre.json")
    assert page.csp_reports() == []
    # and it is enforced: an inline script is refused and reported
    directive = w.evaluate("""() => new Promise(done => {
        document.addEventListener('securitypolicyviolation', e => done(e.effectiveDirective), {once: true});
        const s = document.createElement('script');
        s.textContent = 'window.racklet_inline_ran = true';
        document.body.append(s);
        setTimeout(() => done(null), 3000);
    })""")
    assert directive and directive.startswith("script-src")
    assert w.evaluate("window.racklet_inline_ran") is None
    assert page.csp_reports() != []


def test_a_phone_sized_window(browser, rack, shots):
    ctx = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    w = Watched(ctx.new_page())
    try:
        log_in(w, rack)
        w.page.wait_for_selector('li.tray[data-unit="Unit1"] .watts')
        w.page.wait_for_selector(".firmware tbody tr", timeout=WAIT_MS)
        w.page.wait_for_timeout(500)
        assert w.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        save(w, shots, "phone-dashboard.png")
        w.page.goto(rack.url + "/redfish/v1/UpdateService")
        w.page.wait_for_selector("pre.json")
        assert w.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        save(w, shots, "phone-api.png")
        assert w.errors == [] and w.csp_reports() == []
    finally:
        ctx.close()


def test_screenshots_were_saved(shots):
    """Artifacts for people to look at (kept in pytest's temporary folder)."""
    names = sorted(p.name for p in shots.glob("*.png"))
    if not names:
        pytest.skip("no browser run in this session")
    for name in names:
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    print(json.dumps({"screenshots": str(shots), "files": names}))
