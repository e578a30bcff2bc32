"""The copy-paste examples of docs/quickstart.md, docs/clients.md and docs/labs.md run, as
written, against one live server, in page order (state flows from block to block as in a
reader's terminal).

The convention (docs/clients.md, "How these examples are tested", says it for readers):

- every ```sh block runs with ``bash -e`` (each command must succeed), unless the line
  just before it is ``<!-- not run: REASON -->``;
- a ```python block preceded by ``<!-- file: NAME -->`` is written to the working
  directory as NAME (a later sh block runs it);
- a ```text block whose preceding prose contains "You should see" lists fragments of the
  output of the sh block before it: each line (pieces around "…") must appear in it;
- the pages name the rack only through the variables ``HOST=127.0.0.1:8443`` and
  ``METRICS=https://127.0.0.1:8445/metrics``; the test rewrites exactly those assignment
  lines to its own server's ports, and nothing else. ``S=~/.local/state/redfish-racklet``
  is true as written: HOME points at a directory whose state dir is the server's.

Shell variables a block assigns are carried to the next blocks of the same page, as a
reader's shell would keep them.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .clients import client_env
from .conftest import ROOT, start_server

PAGES = ["quickstart.md", "clients.md", "labs.md"]
DEFAULT_HOST = "127.0.0.1:8443"
DEFAULT_METRICS = "https://127.0.0.1:8445/metrics"
BLOCK_SECONDS = 60
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
ASSIGNED = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.M)


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    before: str                 # the prose between the previous fence and this one
    skip: str | None = None     # the "not run" reason
    file: str | None = None     # a python block to write as this file
    expect: list[str] = field(default_factory=list)


def parse(page: str) -> list[Block]:
    """The fenced blocks of a page, with their markers and expected-output fragments."""
    doc = (ROOT / "docs" / page).read_text()
    blocks: list[Block] = []
    end = 0
    for m in FENCE.finditer(doc):
        before = doc[end:m.start()]
        end = m.end()
        last = before.strip().splitlines()[-1].strip() if before.strip() else ""
        b = Block(page, doc.count("\n", 0, m.start()) + 1, m.group(1), m.group(2), before)
        if (n := re.fullmatch(r"<!-- not run: (.+) -->", last)):
            b.skip = n.group(1)
        if (f := re.fullmatch(r"<!-- file: (\S+) -->", last)):
            b.file = f.group(1)
        if b.lang == "text" and "You should see" in before:
            previous = blocks[-1] if blocks else None
            if previous is not None and previous.lang == "sh" and not previous.skip:
                previous.expect += [ln.strip() for ln in b.text.splitlines() if ln.strip()]
            else:
                b.skip = "UNCHECKED"   # an expected output with no runnable block before it
        blocks.append(b)
    return blocks


def runnable(page: str) -> list[Block]:
    return [b for b in parse(page) if (b.lang == "sh" and not b.skip) or (b.lang == "python" and b.file)]


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """One server for the module, and a reader's machine around it: HOME whose default
    state dir is the server's (with the admin-password file the docs read), a clone
    directory whose .venv is this venv, and this venv's tools on PATH."""
    tmp = tmp_path_factory.mktemp("docs")
    manifest = (ROOT / "redfish_racklet" / "manifests" / "sim-5.yaml").read_text()
    # the default rack, with quick boots so the power exercises take a second, not four
    fast = manifest.replace("boot_seconds: 4, shutdown_seconds: 2", "boot_seconds: 0.5, shutdown_seconds: 0.5")
    assert fast != manifest, "sim-5.yaml changed: update the timings this test shortens"
    srv = start_server(tmp / "rack", fast)
    try:
        (srv.state_dir / "admin-password").write_text(srv.password + "\n")
        home = tmp / "home"
        (home / ".local" / "state").mkdir(parents=True)
        (home / ".local" / "state" / "redfish-racklet").symlink_to(srv.state_dir)
        clone = tmp / "clone"
        clone.mkdir()
        (clone / ".venv").symlink_to(Path(sys.prefix))
        (clone / "redfish_racklet").symlink_to(ROOT / "redfish_racklet")
        env = client_env()
        env.pop("XDG_STATE_HOME", None)
        env.pop("VIRTUAL_ENV", None)
        env.update(HOME=str(home), PATH=f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                   PYTHONWARNINGS="ignore")
        yield srv, clone, env
    finally:
        srv.stop()


def localise(text: str, srv) -> str:
    """The block as the test runs it: only the HOST= and METRICS= assignments changed."""
    text = re.sub(rf"^(\s*(?:export\s+)?HOST=){re.escape(DEFAULT_HOST)}$",
                  rf"\g<1>127.0.0.1:{srv.port}", text, flags=re.M)
    return re.sub(rf"^(\s*(?:export\s+)?METRICS=){re.escape(DEFAULT_METRICS)}$",
                  rf"\g<1>https://127.0.0.1:{srv.metrics_port}/metrics", text, flags=re.M)


def skip_unless_tools(blocks: list[Block], env: dict[str, str]) -> None:
    """Skip (saying what to install) when a client the page runs is not installed."""
    text = "\n".join(b.text for b in blocks)
    tools = {"curl"} | set(re.findall(r"\b(redfishtool|rf_\w+\.py)\b", text))
    missing = sorted(t for t in tools if shutil.which(t, path=env["PATH"]) is None)
    if "import sushy" in text and importlib.util.find_spec("sushy") is None:
        missing.append("sushy")
    if missing:
        pytest.skip(f"the examples need {', '.join(missing)}: pip install -e '.[test]' (and apt-get install curl)")


def run_page(page: str, reader) -> None:
    srv, clone, env = reader
    blocks = runnable(page)
    assert blocks, f"{page} has no runnable example"
    skip_unless_tools(blocks, env)
    saved = clone / f".vars-{page}"
    saved.write_text("")
    names: list[str] = []
    for b in blocks:
        where = f"{page}:{b.line}"
        if b.file:
            (clone / b.file).write_text(b.text)
            continue
        assert "8443" not in b.text.replace(f"HOST={DEFAULT_HOST}", ""), \
            f"{where}: name the rack through $HOST/$RACK, not a literal port"
        names += [n for n in ASSIGNED.findall(b.text) if n not in names]
        keep = f"\ndeclare -p {' '.join(names)} > {saved} 2>/dev/null || true\n" if names else "\n"
        script = f"source {saved}\n" + localise(b.text, srv) + keep
        started = time.monotonic()
        r = subprocess.run(["bash", "-e", "-c", script], cwd=clone, env=env, capture_output=True,
                           text=True, timeout=BLOCK_SECONDS)
        print(f"{where}: {time.monotonic() - started:.1f} s")   # shown with -s: where the time goes
        assert r.returncode == 0, f"{where} failed ({r.returncode}):\n{b.text}\n--- out\n{r.stdout}\n--- err\n{r.stderr}"
        for fragment in b.expect:
            for piece in filter(None, (p.strip() for p in fragment.split("…"))):
                assert piece in r.stdout, f"{where}: the doc says you should see {piece!r}; got:\n{r.stdout}"


def test_the_convention_finds_blocks_and_expectations():
    """Guards the parser: each page has runnable blocks and at least one checked output,
    and every not-run block says why."""
    for page in PAGES:
        blocks = parse(page)
        assert any(b.lang == "sh" and not b.skip for b in blocks), page
        assert any(b.expect for b in blocks), f"{page}: no 'You should see' output is checked"
        assert all(b.skip.strip() for b in blocks if b.skip is not None)
        unchecked = [b.line for b in blocks if b.skip == "UNCHECKED"]
        assert not unchecked, f"{page}: 'You should see' blocks at lines {unchecked} follow no runnable sh block"


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, reader):
    run_page(page, reader)


def test_every_uri_of_the_concepts_table_is_served(reader):
    """docs/concepts.md maps each physical thing to a URI: each one (UnitN as Unit1) answers
    200 to an Administrator on the default rack layout."""
    srv, _, _ = reader
    table = [ln for ln in (ROOT / "docs" / "concepts.md").read_text().splitlines() if ln.startswith("| ")]
    uris = sorted({u.replace("UnitN", "Unit1") for ln in table for u in re.findall(r"`(/redfish/v1[^`\s]*)`", ln)})
    assert len(uris) >= 20, uris
    c = srv.client()
    missing = [(u, r.status_code) for u in uris if (r := c.get(srv.url + u)).status_code != 200]
    assert not missing, missing
