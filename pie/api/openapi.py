"""The served OpenAPI document: what flask-smorest builds, finished for client generators.

Each step below is a rule over the whole document, so a route or schema added later is
covered without being listed: operation ids, `security: []` on public operations, the
`X-Pagination` header as the JSON it is, and request defaults kept out of the types that
generators make required."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

_VERSION = "/v2/models/{model_id}/versions/{model_version}"
_DOMAIN = "/v2/clients/{client_id}/domains/{domain_id}"
_KEY = "assignments/{assignment_key}"
_SERVICE_KEY = f"{_DOMAIN}/service/{{service_id}}/{_KEY}"

# Where the generated name reads poorly, the name a client author would choose.
OPERATION_IDS = {
    ("get", "/v2/health"): "getHealth",
    ("put", "/v2/models/{model_id}"): "replaceModel",  # a full replacement, not an update
    ("put", "/v2/models/{model_id}/job_policy"): "setJobPolicy",
    ("post", "/v2/models/{model_id}/new_version"): "createVersion",
    ("post", f"{_VERSION}/new_status"): "setVersionStatus",
    ("post", f"{_VERSION}/inference"): "runInference",
    ("post", f"{_VERSION}/training"): "runTraining",
    ("get", "/v2/jobs"): "findJobs",
    ("get", f"{_VERSION}/jobs"): "listVersionJobs",
    ("post", f"{_VERSION}/jobs/{{job_id}}/complete"): "completeJob",
    ("post", f"{_VERSION}/jobs/{{job_id}}/heartbeat"): "sendHeartbeat",
    ("post", "/v2/jobs/{job_id}/cancel"): "cancelJob",
    ("post", f"{_DOMAIN}/service/init"): "initService",
    ("post", f"{_DOMAIN}/services/init"): "reinitServices",
    ("put", f"{_DOMAIN}/{_KEY}"): "upsertAssignment",
    ("get", f"{_DOMAIN}/{_KEY}/revisions"): "listAssignmentRevisions",
    ("post", f"{_DOMAIN}/{_KEY}/jobs"): "runAssignmentJob",
    ("put", _SERVICE_KEY): "upsertServiceAssignment",
    ("get", f"{_SERVICE_KEY}/revisions"): "listServiceAssignmentRevisions",
    ("post", f"{_SERVICE_KEY}/jobs"): "runServiceAssignmentJob",
}

_PARAMETER = re.compile(r"\{[^}]+\}")


def finish(spec: dict[str, Any]) -> dict[str, Any]:
    """A finished copy of apispec's document (its dict shares apispec's own state)."""
    document = copy.deepcopy(spec)
    name_operations(document)
    mark_public_operations(document)
    declare_pagination_as_json(document)
    move_request_defaults_to_descriptions(document)
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation, in document order."""
    return [
        (method, path, item[method])
        for path, item in document.get("paths", {}).items()
        for method in HTTP_METHODS
        if method in item
    ]


# --- operation ids --------------------------------------------------------------------------


def name_operations(document: dict[str, Any]) -> None:
    """An operationId on every operation: the listed name, else one made from the method and
    the path; a generated name that is taken gets the names of the path's parents."""
    taken = set(OPERATION_IDS.values())
    for method, path, operation in operations(document):
        if "operationId" in operation:
            taken.add(operation["operationId"])
            continue
        name = OPERATION_IDS.get((method, path))
        if name is None:
            name = unique_name(method, path, taken)
        taken.add(name)
        operation["operationId"] = name


def unique_name(method: str, path: str, taken: set[str]) -> str:
    words = resource_words(path) or ["root"]
    for depth in range(1, len(words) + 1):
        name = generated_name(method, path, words[-depth:])
        if name not in taken:
            return name
    return f"{generated_name(method, path, words)}{method.capitalize()}"


def resource_words(path: str) -> list[str]:
    """The path's literal segments below /v2, e.g. ['models', 'versions', 'jobs']."""
    return [s for s in path.strip("/").split("/") if s != "v2" and not _PARAMETER.fullmatch(s)]


def generated_name(method: str, path: str, words: list[str]) -> str:
    """`listModels`, `getModel`, `createModel`, `updateModel`, `deleteModel`, `replaceFeatures`
    (a PUT to a collection); a POST to a literal that is no collection is an action on what
    the path names before it (`/jobs/{job_id}/cancel` → `cancelJob`). `words` are the path's
    last literal segments: one, unless that name is taken."""
    *parents, last = [camel(word) for word in words]
    prefix = "".join(singular(parent) for parent in parents)
    if _PARAMETER.fullmatch(path.rstrip("/").rsplit("/", 1)[-1]):  # an item
        verb = {"get": "get", "put": "update", "patch": "update"}.get(method, method)
        return f"{verb}{prefix}{singular(last)}"
    if method == "get":
        return f"list{prefix}{last}"
    if method == "put":
        return f"replace{prefix}{last}"
    if method == "post" and last == singular(last):  # an action, not a collection
        owner = resource_words(path)[:-1][-1:] if not parents else []
        return lower_first(last) + prefix + "".join(singular(camel(w)) for w in owner)
    return f"{'create' if method == 'post' else method}{prefix}{singular(last)}"


def camel(word: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", word) if part)


def lower_first(word: str) -> str:
    return word[:1].lower() + word[1:]


def singular(word: str) -> str:
    """English enough for path segments: `models` → `model`; `status`, `access` stay."""
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


# --- security, headers, request bodies ------------------------------------------------------


def mark_public_operations(document: dict[str, Any]) -> None:
    """An operation without security is public: say so (`security: []`), so generators and
    linters do not read it as "inherits the document's"."""
    for _, _, operation in operations(document):
        operation.setdefault("security", [])


def declare_pagination_as_json(document: dict[str, Any]) -> None:
    """X-Pagination carries JSON (flask-smorest's own header, and PIE's cursor page): a header
    declared with `schema` means the comma-separated `simple` style, so declare `content`."""
    headers = [document.get("components", {}).get("headers", {}).get("PAGINATION")]
    for _, _, operation in operations(document):
        for response in operation.get("responses", {}).values():
            headers.append(response.get("headers", {}).get("X-Pagination"))
    for header in headers:
        if header and "schema" in header:
            header["content"] = {"application/json": {"schema": header.pop("schema")}}


def move_request_defaults_to_descriptions(document: dict[str, Any]) -> None:
    """In every schema a request body reaches, a property's `default` goes into its
    description: the server fills it in, but openapi-typescript makes a property with a
    `default` required in the type a caller builds."""
    schemas = document.get("components", {}).get("schemas", {})
    bodies = [operation.get("requestBody", {}) for _, _, operation in operations(document)]
    for name in reachable(bodies, schemas):
        for prop in schemas[name].get("properties", {}).values():
            if isinstance(prop, dict) and "default" in prop:
                default = json.dumps(prop.pop("default"))
                description = prop.get("description", "").rstrip()
                sentence = f"Default: `{default}`."
                prop["description"] = f"{description} ({sentence})" if description else sentence


def reachable(roots: list[Any], schemas: dict[str, Any]) -> list[str]:
    """Names of the component schemas `roots` refer to, directly or through others."""
    found: list[str] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.removeprefix("#/components/schemas/")
            if ref != name and name in schemas and name not in found:
                found.append(name)
                stack.append(schemas[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
