"""The served OpenAPI document, the local docs pages, and the route-coverage meta-test."""

import ast
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.helpers import MODEL_FIELDS, VERSION_FIELDS

PUBLIC_OPERATIONS = {("get", "/v2/health")}
DOCS_ASSETS = "/docs/assets/"
SWAGGER_UI = Path(__file__).resolve().parents[2] / "pie" / "static" / "swagger-ui"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

_D = "/v2/clients/{client_id}/domains/{domain_id}"
_S = f"{_D}/service/{{service_id}}"
_V = "/v2/models/{model_id}/versions/{model_version}"
_SUB = "/v2/models/{model_id}/event-subscriptions"
# Every route of the contract (../shared/spec/API.md), with its methods.
CONTRACT_ROUTES: dict[str, set[str]] = {
    "/v2/health": {"get"},
    "/v2/models": {"get", "post"},
    "/v2/models/{model_id}": {"get", "put", "delete"},
    "/v2/models/{model_id}/new_version": {"post"},
    "/v2/models/{model_id}/versions": {"get"},
    _V: {"get"},
    f"{_V}/new_status": {"post"},
    f"{_V}/inference": {"post"},
    f"{_V}/training": {"post"},
    f"{_V}/jobs": {"get"},
    f"{_V}/jobs/{{job_id}}/complete": {"post"},
    "/v2/jobs/{job_id}": {"get"},
    _SUB: {"get", "post"},
    f"{_SUB}/{{subscription_id}}": {"get", "put", "delete"},
    "/v2/clients": {"get", "post"},
    "/v2/clients/{client_id}": {"get", "put"},
    "/v2/clients/{client_id}/domains": {"get", "post"},
    _D: {"get", "put"},
    f"{_D}/features": {"get", "put"},
    f"{_D}/service/init": {"post"},
    f"{_D}/services": {"get"},
    f"{_D}/services/init": {"post"},
    _S: {"get", "put", "delete"},
    **{
        route: methods
        for scope in (_D, _S)
        for route, methods in {
            f"{scope}/assignments": {"get", "post"},
            f"{scope}/assignments/{{assignment_key}}": {"get", "put"},
            f"{scope}/assignments/{{assignment_key}}/revisions": {"get"},
            f"{scope}/assignments/{{assignment_key}}/jobs": {"post"},
        }.items()
    },
}
# Routes PIE adds beyond the contract; each changes nothing a contract route sends or reads
# (README: "Job control", "Finding jobs").
EXTENSION_ROUTES: dict[str, set[str]] = {
    "/v2/jobs": {"get"},
    "/v2/models/{model_id}/job_policy": {"put"},
    f"{_V}/jobs/{{job_id}}/heartbeat": {"post"},
    "/v2/jobs/{job_id}/cancel": {"post"},
    "/v2/webhooks": {"get", "post"},
    "/v2/webhooks/{webhook_id}": {"get", "put", "delete"},
    "/v2/webhooks/{webhook_id}/rotate-secret": {"post"},
    "/v2/webhooks/{webhook_id}/test": {"post"},
    "/v2/webhooks/{webhook_id}/deliveries": {"get"},
    "/v2/webhooks/{webhook_id}/deliveries/{delivery_id}": {"get"},
    "/v2/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": {"post"},
}
ROUTES = {**CONTRACT_ROUTES, **EXTENSION_ROUTES}
HANDLER_SCHEMAS = {
    "lambda": "LambdaHandler",
    "ecs_task": "EcsTaskHandler",
    "in_process": "InProcessHandler",
    "http": "HttpHandler",
    "celery": "CeleryHandler",
}


@pytest.fixture
def spec(anon):
    r = anon.get("/openapi.json")  # public, like the docs
    assert r.status_code == 200
    return r.get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve_ref(spec, ref):
    assert ref.startswith("#/"), ref
    node = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def deref(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve_ref(spec, node["$ref"])
    return node


def normalise(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


# --- the document -------------------------------------------------------------------------


def test_document_is_valid_openapi_31(spec):
    assert spec["openapi"].startswith("3.1")
    validate(spec, cls=OpenAPIV31SpecValidator)
    assert spec["info"]["title"] and spec["info"]["version"]


def test_secured_operations_declare_bearer_and_document_401_403(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    seen = 0
    for path, method, operation in operations(spec):
        if (method, path) in PUBLIC_OPERATIONS:
            assert not operation.get("security"), (method, path)
            continue
        seen += 1
        assert {"bearerAuth": []} in operation.get("security", []), (method, path)
        for code in ("401", "403"):
            assert code in operation["responses"], (method, path, code)
            response = deref(spec, operation["responses"][code])
            schema = deref(spec, response["content"]["application/json"]["schema"])
            assert {"success", "message"} <= set(schema["required"]), (method, path, code)
    assert seen >= 8


def test_error_responses_use_the_envelope(spec):
    for path, method, operation in operations(spec):
        for code, response in operation["responses"].items():
            if code == "default" or not code.startswith(("4", "5")):
                continue
            if (method, path) in PUBLIC_OPERATIONS:
                continue  # the health 503 carries its own body (contract section 8)
            content = deref(spec, response)["content"]["application/json"]
            schema = deref(spec, content["schema"])
            assert set(schema["properties"]) >= {"success", "message"}, (method, path, code)


def test_every_path_is_a_contract_route_or_a_listed_extension(spec):
    known = {}
    for route, methods in ROUTES.items():
        known.setdefault(normalise(route), set()).update(methods)
    for path, method, _ in operations(spec):
        assert normalise(path) in known, path
        assert method in known[normalise(path)], (method, path)
    assert not set(EXTENSION_ROUTES) & set(CONTRACT_ROUTES)


def test_paths_use_the_contract_parameter_names(spec):
    known = {normalise(route): route for route in ROUTES}
    for path in spec["paths"]:
        assert path == known[normalise(path)], path


def test_the_job_search_documents_its_parameters_cursor_and_headers(spec):
    operation = spec["paths"]["/v2/jobs"]["get"]
    names = {deref(spec, p)["name"] for p in operation["parameters"]}
    filters = {"status", "job_type", "model_id", "model_version", "client_id"}
    filters |= {"parent_job_id", "subscription_id", "created_after", "created_before"}
    assert names == filters | {"page_size", "after"}  # no `page`: it pages by cursor
    page_size = next(p for p in operation["parameters"] if p["name"] == "page_size")
    assert page_size["schema"] == {"type": "integer", "default": 100, "minimum": 1, "maximum": 1000}
    headers = operation["responses"]["200"]["headers"]
    assert set(headers) == {"X-Pagination", "Link"}
    page = deref(spec, headers["X-Pagination"]["content"]["application/json"]["schema"])
    assert set(page["properties"]) == {"page_size", "next_after"}  # no total
    assert "no total" in operation["description"] and "PIE extension" in operation["summary"]
    assert {"400", "401", "403"} <= set(operation["responses"])


def test_foundation_routes_are_documented(spec):
    documented = {(method, path) for path, method, _ in operations(spec)}
    for route in [
        "/v2/models",
        "/v2/models/{model_id}",
        "/v2/models/{model_id}/new_version",
        "/v2/models/{model_id}/versions",
        _V,
        f"{_V}/new_status",
        "/v2/health",
    ]:
        for method in CONTRACT_ROUTES[route]:
            assert (method, route) in documented, (method, route)


def test_model_schemas_have_the_contract_fields(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["Model"]["properties"]) == MODEL_FIELDS
    assert set(schemas["ModelVersion"]["properties"]) == VERSION_FIELDS
    assert schemas["Model"]["properties"]["status"]["enum"] == ["pending", "active"]
    version_status = schemas["ModelVersion"]["properties"]["status"]["enum"]
    assert version_status == ["pending", "training", "active", "failed"]


def test_model_responses_use_the_model_schemas(spec):
    model = spec["paths"]["/v2/models/{model_id}"]["get"]["responses"]["200"]
    assert model["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Model"}
    version = spec["paths"][_V]["get"]["responses"]["200"]["content"]["application/json"]
    assert version["schema"] == {"$ref": "#/components/schemas/ModelVersion"}


@pytest.mark.parametrize("component", ["Model", "ModelVersion"])
def test_handler_is_a_discriminated_one_of(spec, component):
    handlers = deref(spec, spec["components"]["schemas"][component]["properties"]["handlers"])
    assert set(handlers["properties"]) == {"training", "inference"}
    assert set(handlers["required"]) == {"training", "inference"}
    for side in ("training", "inference"):
        assert handlers["properties"][side] == {"$ref": "#/components/schemas/Handler"}
        field = spec["components"]["schemas"]["Handler"]
        refs = {ref["$ref"] for ref in field["oneOf"]}
        expected = {f"#/components/schemas/{name}" for name in HANDLER_SCHEMAS.values()}
        assert refs == expected
        assert field["discriminator"]["propertyName"] == "type"
        mapping = field["discriminator"]["mapping"]
        assert mapping == {t: f"#/components/schemas/{n}" for t, n in HANDLER_SCHEMAS.items()}


@pytest.mark.parametrize("type_name, schema_name", sorted(HANDLER_SCHEMAS.items()))
def test_handler_type_schemas(spec, type_name, schema_name):
    schema = spec["components"]["schemas"][schema_name]
    assert schema["properties"]["type"]["enum"] == [type_name]
    required = {
        "lambda": {"type", "arn"},
        "ecs_task": {"type", "value"},
        "http": {"type", "url"},
        "celery": {"type", "task"},
    }
    assert set(schema["required"]) == required.get(type_name, {"type", "value"})
    assert schema.get("additionalProperties") is False


def test_list_operations_document_pagination(spec):
    for route in ["/v2/models", "/v2/models/{model_id}/versions"]:
        operation = spec["paths"][route]["get"]
        names = {deref(spec, p)["name"] for p in operation.get("parameters", [])}
        assert {"page", "page_size"} <= names, route
        assert "X-Pagination" in operation["responses"]["200"]["headers"], route


# --- the docs pages -----------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_docs_page_uses_local_assets(anon):
    r = anon.get("/docs")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    parser = _Links()
    parser.feed(html)
    assert parser.urls, html
    scripts = [u for u in parser.urls if u.endswith(".js")]
    styles = [u for u in parser.urls if u.endswith(".css")]
    assert scripts and styles
    for url in parser.urls:
        assert url.startswith(DOCS_ASSETS), url
        asset = anon.get(url)
        assert asset.status_code == 200, url
        assert asset.get_data() == (SWAGGER_UI / url.removeprefix(DOCS_ASSETS)).read_bytes(), url
    assert "/openapi.json" in html


def test_docs_page_turns_off_the_online_validator(anon):
    html = anon.get("/docs").get_data(as_text=True)
    config = re.search(r"override_config = (\{.*?\});", html)
    assert config, html
    assert json.loads(config[1]) == {"validatorUrl": None}


def test_vendored_swagger_ui_is_the_5x_its_readme_names(anon):
    named = re.search(r"swagger-ui-dist (\d+\.\d+\.\d+)", (SWAGGER_UI / "README.md").read_text())
    bundle = anon.get(f"{DOCS_ASSETS}swagger-ui-bundle.js").get_data(as_text=True)
    files = {path.name for path in SWAGGER_UI.iterdir()}

    assert named and named[1].startswith("5."), "Swagger UI 5 is the first to render OpenAPI 3.1"
    assert f'PACKAGE_VERSION:"{named[1]}"' in bundle
    assert {"LICENSE", "NOTICE"} <= files
    assert not [name for name in files if name.endswith(".map")]


def test_docs_asset_404_is_not_a_crash(anon):
    assert anon.get("/docs/assets/no-such-file.js").status_code == 404


def test_docs_with_a_trailing_slash_leads_to_the_docs_page(anon):
    response = anon.get("/docs/")

    assert response.status_code == 308
    assert response.headers["Location"] == "/docs"
    assert anon.get(response.headers["Location"]).status_code == 200
    assert anon.get("/docs/?deepLinking=1").headers["Location"] == "/docs?deepLinking=1"


# --- meta-test: every documented route is exercised by some test --------------------------
#
# A static scan of tests/: every `client.<method>(path)` call and every `("METHOD", path, ...)`
# tuple (parametrize lists, loops) counts, where `path` may be a literal, an f-string, a
# module-level or local constant, a loop variable over literal values, a `+` concatenation or a
# call to a helper that returns a path. Unknown parts stand for one path segment; an unknown
# prefix stands for any leading segments.

TESTS_ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "\x00"
CALL_METHODS = {"get", "post", "put", "delete", "patch"}
MAX_RENDERINGS = 32


class _Scope:
    def __init__(self, parent=None):
        self.parent = parent
        self.names: dict[str, set[str]] = {}

    def lookup(self, name):
        if name in self.names:
            return self.names[name]
        return self.parent.lookup(name) if self.parent else None

    def bind(self, name, values):
        self.names.setdefault(name, set()).update(values)


def _render(node, scope, helpers) -> set[str]:
    """Every string `node` may evaluate to, with UNKNOWN for the parts we cannot know."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.JoinedStr):
        out = {""}
        for part in node.values:
            values = (
                _render(part.value, scope, helpers)
                if isinstance(part, ast.FormattedValue)
                else {str(part.value)}
            )
            out = {a + b for a in out for b in values}
        return set(sorted(out)[:MAX_RENDERINGS])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _render(node.left, scope, helpers), _render(node.right, scope, helpers)
        return set(sorted(a + b for a in left for b in right)[:MAX_RENDERINGS])
    if isinstance(node, ast.IfExp):
        return _render(node.body, scope, helpers) | _render(node.orelse, scope, helpers)
    if isinstance(node, ast.Name):
        return scope.lookup(node.id) or {UNKNOWN}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in helpers:
        return helpers[node.func.id]
    return {UNKNOWN}


def _bind_targets(statement, scope, helpers):
    """Record simple string assignments and loops over literal sequences."""
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Name):
                values = _render(statement.value, scope, helpers)
                if values != {UNKNOWN}:
                    scope.bind(target.id, values)
    elif isinstance(statement, ast.For | ast.comprehension):
        target, iterable = statement.target, statement.iter
        if isinstance(target, ast.Name) and isinstance(iterable, ast.Tuple | ast.List):
            for element in iterable.elts:
                scope.bind(target.id, _render(element, scope, helpers))


def _hits(node, scope, helpers):
    """(method, rendered path) pairs that one call or tuple node exercises."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        name = node.func.attr
        if name in CALL_METHODS:
            return [(name, p) for p in _render(node.args[0], scope, helpers)]
        if name in ("request", "open") and len(node.args) >= 2:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return [(first.value.lower(), p) for p in _render(node.args[1], scope, helpers)]
    if isinstance(node, ast.Tuple) and len(node.elts) >= 2:
        first = node.elts[0]
        if isinstance(first, ast.Constant) and str(first.value).lower() in CALL_METHODS:
            return [(first.value.lower(), p) for p in _render(node.elts[1], scope, helpers)]
    return []


def scan_requests(source: str) -> set[tuple[str, str]]:
    """The (method, path) pairs a test module's source sends, as far as a static scan sees."""
    tree = ast.parse(source)
    module = _Scope()
    helpers: dict[str, set[str]] = {}
    for statement in tree.body:
        _bind_targets(statement, module, helpers)
    for statement in tree.body:  # helpers that build paths, e.g. `def url(id): return f"..."`
        if isinstance(statement, ast.FunctionDef):
            returns = set()
            for node in ast.walk(statement):
                if isinstance(node, ast.Return) and node.value is not None:
                    returns |= _render(node.value, module, helpers)
            paths = {r for r in returns if r.startswith("/") and r != UNKNOWN}
            if paths:
                helpers[statement.name] = paths
    found: set[tuple[str, str]] = set()
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.Lambda)]
    for root in [tree, *functions]:
        scope = module if root is tree else _Scope(module)
        nodes = list(ast.walk(root))
        for _ in range(2):  # twice, so names bound later in the text are seen everywhere
            for node in nodes:
                _bind_targets(node, scope, helpers)
        for node in nodes:
            found.update(_hits(node, scope, helpers))
    return found


def _segment_pattern(segment: str) -> str:
    return r"[^/?]+" if re.fullmatch(r"\{[^}]+\}", segment) else re.escape(segment)


def route_is_hit(method: str, route: str, hits: set[tuple[str, str]]) -> bool:
    segments = route.strip("/").split("/")
    full = re.compile("/" + "/".join(map(_segment_pattern, segments)))
    suffixes = [
        re.compile(re.escape(UNKNOWN) + "/" + "/".join(map(_segment_pattern, segments[i:])))
        for i in range(1, len(segments))
    ]
    for hit_method, path in hits:
        if hit_method != method:
            continue
        path = path.split("?", 1)[0]
        if full.fullmatch(path) or any(s.fullmatch(path) for s in suffixes):
            return True
    return False


def test_route_scan_understands_the_usual_idioms():
    source = """
BASE = "/v2/clients/acme/domains/d1"
S = f"{BASE}/service/s1"
CASES = [("PUT", f"{BASE}/features", {}), ("GET", S, None)]

def sub_path(model_id, sub_id=""):
    return f"/v2/models/{model_id}/event-subscriptions" + (f"/{sub_id}" if sub_id else "")

def test_a(client, mid):
    client.post(f"/v2/models/{mid}/versions/1/new_status", json={})
    url = f"/v2/models/{mid}/versions"
    client.get(url + "?page=2")
    client.delete(sub_path("m1", "x"))
    client.request("PATCH", "/v2/models")
    for scope in (BASE, S):
        client.get(f"{scope}/assignments")
"""
    hits = scan_requests(source)
    expected_hits = [
        ("post", "/v2/models/{model_id}/versions/{model_version}/new_status"),
        ("get", "/v2/models/{model_id}/versions"),
        ("delete", "/v2/models/{model_id}/event-subscriptions/{subscription_id}"),
        ("patch", "/v2/models"),
        ("put", "/v2/clients/{client_id}/domains/{domain_id}/features"),
        ("get", "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}"),
        ("get", "/v2/clients/{client_id}/domains/{domain_id}/assignments"),
        ("get", "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments"),
    ]
    for method, route in expected_hits:
        assert route_is_hit(method, route, hits), (method, route)
    for method, route in [
        ("get", "/v2/models/{model_id}/versions/{model_version}/new_status"),
        ("post", "/v2/models/{model_id}/versions"),
        ("get", "/v2/models/{model_id}/versions/{model_version}"),
        ("get", "/v2/models"),
        ("put", "/v2/clients/{client_id}/domains/{domain_id}"),
        ("get", "/v2/jobs/{job_id}"),
    ]:
        assert not route_is_hit(method, route, hits), (method, route)


def test_every_documented_route_is_exercised(spec):
    hits: set[tuple[str, str]] = set()
    for path in sorted(TESTS_ROOT.rglob("*.py")):
        if path.resolve() != Path(__file__).resolve():
            hits |= scan_requests(path.read_text(encoding="utf-8"))
    untested = [
        f"{method.upper()} {route}"
        for route, method, _ in operations(spec)
        if not route_is_hit(method, route, hits)
    ]
    assert not untested, f"routes without a test: {untested}"
