"""The documentation site builds with ``mkdocs build --strict`` without a single warning, every
page of its nav is built, and the generated HTTP API page covers every path of the service's
OpenAPI document (as a live server serves it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .clients import client_env
from .conftest import ROOT

MKDOCS = Path(sys.executable).with_name("mkdocs")


def _nav_pages(nav) -> list[str]:
    """The markdown files the nav of mkdocs.yml names, in order."""
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _built(site: Path, page: str) -> Path:
    """Where mkdocs writes a page (use_directory_urls: index.md -> index.html, x.md -> x/index.html)."""
    stem = page.removesuffix(".md")
    return site / "index.html" if stem == "index" else site / stem / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    mkdocs = str(MKDOCS) if MKDOCS.exists() else shutil.which("mkdocs")
    if not mkdocs:
        pytest.skip("mkdocs is not installed: pip install mkdocs (it is in the test extra)")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=client_env(), capture_output=True, text=True, timeout=120)
    return proc, out


def test_the_site_builds_without_warnings(site):
    proc, _ = site
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "WARNING" not in output, output[-3000:]


def test_every_nav_page_is_built(site):
    _, out = site
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = _nav_pages(nav)
    assert "http-api.md" in pages and "index.md" in pages
    for page in pages:
        assert _built(out, page).is_file(), page


def test_the_http_api_page_lists_every_path(site, server):
    _, out = site
    served = server.anonymous().get(server.url + "/redfish/v1/openapi.yaml", timeout=10)
    assert served.status_code == 200
    paths = yaml.safe_load(served.content)["paths"]
    html = _built(out, "http-api.md").read_text()
    listed = set(re.findall(r"<code>(/[^<]*)</code>", html))
    missing = [p for p in paths if p.replace("&", "&amp;") not in listed]
    assert not missing, missing
    published = yaml.safe_load((out / "openapi.yaml").read_text())
    assert set(published["paths"]) == set(paths)


def test_links_to_repository_files_resolve(site):
    """A page's ../deploy/... link points at the copy the hook put in the site."""
    _, out = site
    checked = 0
    for html in out.rglob("index.html"):
        for href in re.findall(r'href="([^"#]*repo/[^"#]+)"', html.read_text()):
            assert (html.parent / href).resolve().is_file(), (html, href)
            checked += 1
    assert checked > 0
