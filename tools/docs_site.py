"""mkdocs hooks of the documentation site (mkdocs.yml ``hooks:``).

- The HTTP API reference (``http-api.md``) is generated at build time from the service's own
  OpenAPI document: an app is built with ``create_app`` on a throwaway state directory, and
  every path, method, parameter, request body and response of its document becomes markdown.
  The document itself is published too (``openapi.yaml`` in the site).
- The pages link to repository files outside ``docs/`` (``../deploy/prometheus/prometheus.yml``)
  so that the links work when reading the markdown on GitHub. The hook copies each such file
  into the site under ``repo/`` and points the link there, so the built site has no broken
  link and ``mkdocs build --strict`` has nothing to warn about.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import yaml
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
API_PAGE = "http-api.md"
REPO_DIR = "repo"  # where the repository files linked from the pages go in the site
# A markdown link or image whose target leaves docs/: ](../path) or ](../path#anchor)
OUTSIDE_LINK = re.compile(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")
METHOD_ORDER = ("get", "head", "post", "patch", "put", "delete")


def openapi_document() -> str:
    """The OpenAPI YAML the service serves, from an app on a throwaway state directory."""
    from redfish_racklet.app import create_app
    from redfish_racklet.resources import openapi

    state = tempfile.mkdtemp(prefix="racklet-docs-")
    try:
        app = create_app({"STATE_DIR": state})
        with app.app_context():
            text = openapi.document().decode()
        app.extensions["racklet_store"].close()
        return text
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _cell(text) -> str:
    """Text made safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _anchor(method: str, path: str) -> str:
    return "op-" + method + "-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-").lower()


def _schema_text(schema: dict) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}` (below)"
    return f"`{schema.get('type', 'any')}`" + (f": {schema['description']}" if schema.get("description") else "")


def api_markdown(doc: dict) -> str:
    """The HTTP API reference page: a table of contents by tag, then every operation."""
    tags = {t["name"]: t.get("description", t["name"]) for t in doc.get("tags", [])}
    by_tag: dict[str, list[tuple[str, str, dict]]] = {}
    for path, item in doc["paths"].items():
        for method in METHOD_ORDER:
            if method in item:
                for tag in item[method].get("tags", ["other"]):
                    by_tag.setdefault(tag, []).append((method, path, item[method]))
    out = [
        "# HTTP API reference", "",
        f"Generated from the service's OpenAPI {doc['openapi']} document "
        f"(`{doc['info']['title']}` {doc['info']['version']}), which every running service also "
        "serves, without login, at `/redfish/v1/openapi.yaml`: [download it](openapi.yaml).", "",
        doc["info"].get("description", ""), "",
        "**Authentication.** Unless an operation says *no login*, send one of: "
        + "; ".join(f"**{name}** ({_cell(s.get('description', s['type']))})"
                    for name, s in doc["components"]["securitySchemes"].items()) + ".", "",
        "**Errors.** Every error answer has the Redfish error body (`RedfishError`, below): "
        "`error.code`, `error.message` and `error.@Message.ExtendedInfo`, the messages that "
        "say what went wrong.", "",
        "## Contents", "",
    ]
    out += [f"- [{_cell(tags.get(tag, tag))}](#tag-{tag}) ({len(ops)})" for tag, ops in by_tag.items()]
    for tag, ops in by_tag.items():
        out += ["", f"## {tags.get(tag, tag)} {{#tag-{tag}}}", "", "| Method | Path | Summary |", "|---|---|---|"]
        out += [f"| {m.upper()} | [`{p}`](#{_anchor(m, p)}) | {_cell(op.get('summary', ''))} |" for m, p, op in ops]
    out += ["", "## Operations"]
    for path, item in doc["paths"].items():
        path_params = item.get("parameters", [])
        for method in METHOD_ORDER:
            if method in item:
                out += _operation(method, path, item[method], path_params)
    out += ["", "## Schemas", ""]
    for name, schema in doc["components"].get("schemas", {}).items():
        out += [f"### {name}", "", "| Property | Type | Required | Description |", "|---|---|---|---|"]
        required = set(schema.get("required", []))
        for prop, spec in schema.get("properties", {}).items():
            kind = spec.get("type") or spec.get("$ref", "").rsplit("/", 1)[-1] or "any"
            if kind == "array":
                kind = "array of " + (spec["items"].get("type") or spec["items"].get("$ref", "").rsplit("/", 1)[-1])
            extra = ", ".join(f"{k} {spec[k]}" for k in ("enum", "minimum", "maximum") if k in spec)
            out.append(f"| `{prop}` | {_cell(kind)} | {'yes' if prop in required else ''} | "
                       f"{_cell(spec.get('description', ''))}{' (' + _cell(extra) + ')' if extra else ''} |")
        out.append("")
    return "\n".join(out) + "\n"


def _operation(method: str, path: str, op: dict, path_params: list) -> list[str]:
    out = ["", f"### {method.upper()} `{path}` {{#{_anchor(method, path)}}}", "", f"**{op.get('summary', '')}**"
           + (" — *no login*" if op.get("security") == [] else "")]
    if op.get("description"):
        out += ["", op["description"]]
    params = path_params + op.get("parameters", [])
    if params:
        out += ["", "| Parameter | In | Description |", "|---|---|---|"]
        out += [f"| `{p['name']}` | {p['in']} | {_cell(p.get('description', ''))} |" for p in params]
    body = op.get("requestBody")
    if body:
        out += ["", "Request body: " + "; ".join(f"`{t}` {_schema_text(c.get('schema', {}))}"
                                                  for t, c in body["content"].items())]
    codes = op.get("responses", {})
    ok = [f"{code} {r.get('description', '')}".strip() for code, r in codes.items() if "$ref" not in r]
    errors = [code for code, r in codes.items() if "$ref" in r]
    out += ["", "Responses: " + "; ".join(_cell(x) for x in ok)
            + (f"; errors ({'`RedfishError`'}): {', '.join(errors)}" if errors else "") + "."]
    return out


# -- the hooks -------------------------------------------------------------------------

def on_files(files, config):
    """Add the generated API page, the OpenAPI document, and the repository files the pages link to."""
    text = openapi_document()
    files.append(File.generated(config, "openapi.yaml", content=text))
    files.append(File.generated(config, API_PAGE, content=api_markdown(yaml.safe_load(text))))
    docs_dir = Path(config["docs_dir"])
    wanted = set()
    for page in docs_dir.rglob("*.md"):
        for target, _ in OUTSIDE_LINK.findall(page.read_text(encoding="utf-8")):
            real = (page.parent / target).resolve()
            if real.is_file() and ROOT in real.parents and docs_dir not in real.parents:
                wanted.add(real.relative_to(ROOT).as_posix())
    for rel in sorted(wanted):
        files.append(File.generated(config, f"{REPO_DIR}/{rel}", abs_src_path=str(ROOT / rel)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Point links to repository files at their copies under ``repo/``."""
    docs_dir = Path(config["docs_dir"]).resolve()
    page_dir = (docs_dir / page.file.src_uri).parent

    def rewrite(match):
        target, anchor = match.group(1), match.group(2) or ""
        real = (page_dir / target).resolve()
        if not real.is_file() or ROOT not in real.parents or docs_dir in real.parents:
            return match.group(0)  # not a repository file: mkdocs judges it as usual
        copy = docs_dir / REPO_DIR / real.relative_to(ROOT)
        return f"]({os.path.relpath(copy, page_dir).replace(os.sep, '/')}{anchor})"

    return OUTSIDE_LINK.sub(rewrite, markdown)
