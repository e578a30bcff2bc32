"""The OpenAPI document at /redfish/v1/openapi.yaml: public, YAML whatever the Accept, and a
true map of the service (every route of the app, with its methods, is in it).

The OpenAPI 3.1 meta-schema is not available offline, so the document is checked
structurally, and each of its JSON Schemas against the JSON Schema 2020-12 meta-schema
(which OpenAPI 3.1 uses).
"""

from __future__ import annotations

import re

import pytest
import yaml
from jsonschema import Draft202012Validator

from redfish_racklet.app import create_app

URI = "/redfish/v1/openapi.yaml"
# What the DMTF Protocol Validator sends (REQ_HEADERS_ACCEPT), and what a browser sends.
ACCEPTS = ["application/yaml", "application/yaml;charset=utf-8", "application/*",
           "application/*;charset=utf-8", "*/*", "*/*;charset=utf-8",
           "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def served(server):
    """The document as the running server answers it to a client without credentials."""
    r = server.anonymous().get(server.url + URI, timeout=10)
    assert r.status_code == 200, r.text[:300]
    return r


@pytest.fixture(scope="module")
def doc(served):
    return yaml.safe_load(served.content)


def test_served_without_login_as_yaml(served, doc):
    assert served.headers["Content-Type"].split(";")[0] == "application/yaml"
    assert served.headers["OData-Version"] == "4.0"
    assert isinstance(doc, dict) and doc["openapi"] == "3.1.0"


@pytest.mark.parametrize("accept", ACCEPTS)
def test_every_accept_gets_the_same_yaml(server, served, accept):
    """A browser too gets the YAML (to read or save), not the page shell."""
    r = server.anonymous().get(server.url + URI, headers={"Accept": accept}, timeout=10)
    assert r.status_code == 200, (accept, r.status_code)
    assert r.headers["Content-Type"].split(";")[0] == "application/yaml", accept
    assert r.content == served.content, accept


def test_head_and_refused_methods(server, served):
    s = server.anonymous()
    head = s.head(server.url + URI, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == served.headers["Content-Type"]
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        r = s.request(method, server.url + URI, json={}, timeout=10)
        assert r.status_code == 405, (method, r.status_code)
        assert "error" in r.json()
        assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_document_structure(doc):
    assert doc["info"]["title"] and doc["info"]["version"]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert schemes["sessionToken"]["in"] == "header" and schemes["sessionToken"]["name"] == "X-Auth-Token"
    assert schemes["clientCertificate"]["type"] == "mutualTLS"
    assert {name for alt in doc["security"] for name in alt} == set(schemes)
    error = doc["components"]["schemas"]["RedfishError"]
    assert error["required"] == ["error"]
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    for path, item in doc["paths"].items():
        assert path.startswith("/"), path
        template_params = set(re.findall(r"{(\w+)}", path))
        described = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert described == template_params, path
        assert all(p.get("description") and p["required"] for p in item.get("parameters", [])), path
        for method, op in item.items():
            if method == "parameters":
                continue
            assert method in HTTP_METHODS, (path, method)
            assert op.get("summary") and op.get("description") and op.get("tags"), (path, method)
            assert any(code.startswith("2") for code in op["responses"]), (path, method)
            for code, response in op["responses"].items():
                if code[0] in "45":
                    assert response == {"$ref": f"#/components/responses/{_name(doc, response)}"}
            if method in ("post", "patch"):
                assert op["requestBody"]["content"], (path, method)


def _name(doc, ref: dict) -> str:
    """The name of a referenced error response, after checking that it exists and is Redfish's."""
    name = ref["$ref"].rsplit("/", 1)[-1]
    response = doc["components"]["responses"][name]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RedfishError"}
    return name


def test_every_route_is_documented_with_its_methods(tmp_path, doc):
    """Compared with the routes of an app built here (the same code the server runs)."""
    app = create_app({"STATE_DIR": str(tmp_path)})
    seen = 0
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if not path.startswith("/redfish/v1"):
            continue
        assert path in doc["paths"], path
        documented = {m for m in doc["paths"][path] if m != "parameters"}
        assert documented == {m.lower() for m in rule.methods - {"OPTIONS"}}, path
        seen += 1
    assert seen > 60


def test_public_paths_say_so(doc, server):
    """The operations documented without security are exactly those answered without login."""
    s = server.anonymous()
    for path in ("/redfish/v1/$metadata", "/redfish/v1/odata", URI, "/redfish/v1/Systems"):
        public = doc["paths"][path]["get"].get("security") == []
        r = s.get(server.url + path, timeout=10)
        assert (r.status_code == 200) == public, (path, r.status_code)
