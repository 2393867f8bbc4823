"""Whether a user's JSON Schema can be applied safely, beyond what its metaschema says."""

# Draft 2020-12 only, references that resolve inside the document, every $id declared once,
# and no reference loop that never moves into the value.

from __future__ import annotations

from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import referencing.exceptions
from jsonschema import Draft202012Validator
from referencing.jsonschema import DRAFT202012

from pie.contracts import patterns
from pie.contracts.budget import metered, tick
from pie.contracts.quote import quote
from pie.contracts.validator import NO_RETRIEVAL, Validator, document_registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A document's root may name an older json-schema.org dialect (as schemas copied from elsewhere
# often do); PIE evaluates it as Draft 2020-12 all the same, and never fetches a metaschema.
ROOT_DIALECTS = {
    DIALECT,
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-04/schema",
    "http://json-schema.org/draft-03/schema",
}
MAX_DEPTH = 64
# The longest chain of schemas applied to one value ($ref, allOf, not, if …): longer ones
# would exhaust the stack during evaluation.
MAX_CHAIN = 48
IN_VALUE = (
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
)
IN_ARRAY = ("allOf", "anyOf", "oneOf", "prefixItems")
IN_OBJECT = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
# Keywords whose subschemas apply to the instance itself rather than to a part of it.
SAME_VALUE = ("not", "if", "then", "else", "allOf", "anyOf", "oneOf", "dependentSchemas")
REFERENCES = ("$ref", "$dynamicRef")
# No format checker: the metaschema's formats are `regex`, which Python's `re` would compile
# with no bound on its cost (patterns are checked below instead), and `uri`/`uri-reference`,
# whose checkers depend on which optional packages happen to be installed (references are
# resolved below instead).
_META = Validator(Draft202012Validator.META_SCHEMA, registry=NO_RETRIEVAL)


def depth(value: Any) -> int:
    """JSON nesting depth, counted without recursion (it stops a level past MAX_DEPTH)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend(
                    (c, level + 1) for c in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def label(where: str) -> str:
    return where.lstrip("/") or "(root)"


def subschemas(node: dict, where: str) -> list[tuple[Any, str, str]]:
    """(subschema, pointer, keyword) for each place Draft 2020-12 puts a subschema in `node`."""
    found: list[tuple[Any, str, str]] = []
    for keyword in IN_VALUE:
        if keyword in node:
            found.append((node[keyword], f"{where}/{keyword}", keyword))
    for keyword in IN_ARRAY:
        if isinstance(node.get(keyword), list):
            found += [(v, f"{where}/{keyword}/{i}", keyword) for i, v in enumerate(node[keyword])]
    for keyword in IN_OBJECT:
        if isinstance(node.get(keyword), dict):
            found += [
                (v, f"{where}/{keyword}/{_escape(k)}", keyword) for k, v in node[keyword].items()
            ]
    return found


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def metaschema_problems(schema: Any, where: str = "") -> list[str]:
    """The first way `schema` fails the Draft 2020-12 metaschema (as check_schema reports it)."""
    try:
        with metered():
            error = next(_META.iter_errors(schema), None)
    except RecursionError:  # kept as a backstop: depth is bounded before this runs
        return [f"{label(where)}: nests too deeply to be checked"]
    if error is None:
        return []
    path = "/".join(str(p) for p in error.absolute_path)
    return [f"{label(where + '/' + path if path else where)}: {error.message}"]


def node_problems(node: dict, where: str, root: bool = False) -> list[str]:
    """What one schema object may not contain, whatever its references."""
    problems = []
    dialect = node.get("$schema")
    if isinstance(dialect, str) and dialect.rstrip("#") not in (
        ROOT_DIALECTS if root else {DIALECT}
    ):
        problems.append(
            f"{label(where)}: $schema {dialect!r} is not supported: PIE applies JSON Schema "
            f"Draft 2020-12 ({DIALECT}) and never fetches a metaschema"
        )
    if "$vocabulary" in node:
        problems.append(
            f"{label(where)}: $vocabulary is for metaschemas, and PIE takes no custom one"
        )
    found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        found += list(node["patternProperties"])
    for pattern in found:
        problem = patterns.problem(pattern)
        if problem:
            problems.append(f"{label(where)}: pattern {quote(pattern)} cannot be used: {problem}")
    return problems


def structure(schema: Any) -> list[tuple[dict, str]]:
    """Every schema object reachable from the root through subschema keywords, each after
    the one it is in."""
    found, stack = [], [(schema, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            found.append((node, where))
            stack.extend((child, child_where) for child, child_where, _ in subschemas(node, where))
    return found


def problems(schema: Any) -> list[str]:
    """Why `schema` cannot be applied: empty when it can be, safely."""
    if not isinstance(schema, dict | bool):
        return ["a JSON Schema must be an object or a boolean"]
    if depth(schema) > MAX_DEPTH:
        return [f"(root): the schema nests deeper than {MAX_DEPTH} levels"]
    found = metaschema_problems(schema)
    if found or isinstance(schema, bool):
        return found
    nodes = structure(schema)
    found = [p for node, where in nodes for p in node_problems(node, where, node is schema)]
    # References are followed only once every subschema is plain Draft 2020-12 (the reference
    # library reads a subschema's $schema to decide how to walk it) and every $id is a URI
    # declared once (with two, lookups and evaluation could pick different ones).
    found = found or identifier_problems(nodes)
    return found or _References(schema, {id(node) for node, _ in nodes}).problems()


def identifier_problems(nodes: list[tuple[dict, str]]) -> list[str]:
    """Each `$id` must resolve (against the $ids around it) to a URI no other one has."""
    root = nodes[0][0]
    bases: dict[int, str] = {id(root): ""}
    declared: dict[str, str] = {}
    for node, where in nodes:  # parents come before their subschemas
        base = bases[id(node)]
        if isinstance(node.get("$id"), str):
            try:
                urlsplit(node["$id"])  # urljoin skips the parse when the base is empty
                base = urldefrag(urljoin(base, node["$id"]))[0]
            except ValueError as exc:
                return [f"{label(where)}: $id {node['$id']!r} is not a URI reference ({exc})"]
        if node is root or "$id" in node:
            if base in declared:
                return [
                    f"{label(where)}: $id {node['$id']!r} is declared twice, here and at "
                    f"{label(declared[base])}"
                ]
            declared[base] = where
        for child, _, _ in subschemas(node, where):
            bases[id(child)] = base
    return []


class _References:
    """Follows every $ref and $dynamicRef the way evaluation would, without any retrieval, and
    builds the graph of schemas applied to the same value to find loops and long chains."""

    def __init__(self, schema: dict, structural: set[int]) -> None:
        self.schema, self.structural = schema, structural
        self.edges: dict[int, list[int]] = {}
        self.where: dict[int, str] = {}
        self.found: list[str] = []

    def problems(self) -> list[str]:
        registry, uri = document_registry(self.schema)
        root = registry.resolver(base_uri=uri)
        anchors: dict[str, list[int]] = {}
        dynamic: list[tuple[int, str]] = []
        stack: list[tuple[Any, str, Any]] = [(self.schema, "", root)]
        while stack:
            tick()  # the walk counts against the budget like evaluation does
            node, where, resolver = stack.pop()
            if not isinstance(node, dict) or id(node) in self.where:
                continue
            self.where[id(node)] = where
            if id(node) not in self.structural:  # reached only through a reference
                self.found += metaschema_problems(node, where) or node_problems(node, where)
            if isinstance(node.get("$dynamicAnchor"), str):
                anchors.setdefault(node["$dynamicAnchor"], []).append(id(node))
            for keyword in REFERENCES:
                if isinstance(node.get(keyword), str):
                    stack += self.follow(node, where, keyword, resolver)
                    if keyword == "$dynamicRef" and node[keyword].startswith("#"):
                        dynamic.append((id(node), node[keyword][1:]))
            for child, child_where, keyword in subschemas(node, where):
                if keyword in SAME_VALUE:
                    self.edge(node, child)
                inner = resolver.in_subresource(DRAFT202012.create_resource(child))
                stack.append((child, child_where, inner))
        for source, name in dynamic:
            self.edges.setdefault(source, []).extend(anchors.get(name, []))
        if self.found:
            return self.found
        loop = self.loop_or_long_chain()
        return [loop] if loop else []

    def edge(self, source: dict, target: Any) -> None:
        if isinstance(target, dict):
            self.edges.setdefault(id(source), []).append(id(target))

    def follow(self, node: dict, where: str, keyword: str, resolver: Any) -> list:
        ref = node[keyword]
        try:
            resolved = resolver.lookup(ref)
        except (referencing.exceptions.Unresolvable, LookupError, ValueError, TypeError):
            self.found.append(
                f"{label(where)}: {keyword} {ref!r} does not resolve inside this schema: only "
                "references within the same document resolve (such as '#/$defs/name'), and "
                "PIE never fetches one"
            )
            return []
        if not isinstance(resolved.contents, dict | bool):
            self.found.append(f"{label(where)}: {keyword} {ref!r} points at a non-schema value")
            return []
        self.edge(node, resolved.contents)
        target_where = ref[1:] if ref.startswith("#/") else ref
        return [(resolved.contents, target_where, resolved.resolver)]

    def loop_or_long_chain(self) -> str | None:
        """A loop of same-value schemas, or a chain longer than MAX_CHAIN (iterative DFS)."""
        longest: dict[int, int] = {}
        for start in list(self.edges):
            if start in longest:
                continue
            path, position = [start], {start: 0}
            stack = [iter(self.edges.get(start, []))]
            while stack:
                child = next(stack[-1], None)
                if child is None:
                    node = path.pop()
                    stack.pop()
                    del position[node]
                    longest[node] = 1 + max(
                        (longest[c] for c in self.edges.get(node, [])), default=0
                    )
                    if longest[node] > MAX_CHAIN:
                        return (
                            f"{label(self.where[node])}: more than {MAX_CHAIN} schemas apply "
                            "to the same value, one through another"
                        )
                elif child in position:
                    names = [label(self.where[n]) for n in path[position[child] :]]
                    return "a reference loop never moves into the value: " + " -> ".join(
                        [*names, label(self.where[child])]
                    )
                elif child not in longest:
                    position[child] = len(path)
                    path.append(child)
                    stack.append(iter(self.edges.get(child, [])))
        return None
