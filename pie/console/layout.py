"""A layered drawing of the chain graph, computed here and drawn as SVG by the template: each
model in the column after the models that start it (longest path; links that close a cycle
are drawn backwards), ordered in its column by where its starters are."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

NODE_W, NODE_H = 180, 44
GAP_X, GAP_Y = 210, 64
MARGIN = 24
TOP = 84  # above the first row: room for the links drawn back over the models


@dataclass
class Node:
    id: str
    label: str
    status: str
    layer: int = 0
    x: float = 0
    y: float = 0


@dataclass
class Edge:
    sub: Any  # the subscription it draws
    path: str = ""
    label_x: float = 0
    label_y: float = 0


@dataclass
class Drawing:
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float
    incomplete: list[str] = field(default_factory=list)  # subscriptions to unseen models


def layers(ids: list[str], links: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layers of the graph without the links that close cycles (found by a
    depth-first walk in `ids` order)."""
    out: dict[str, list[str]] = defaultdict(list)
    for source, target in links:
        if source != target:
            out[source].append(target)
    position = {node: i for i, node in enumerate(reversed(finish_order(ids, out)))}
    layer = dict.fromkeys(ids, 0)
    for node in sorted(ids, key=position.__getitem__):  # a topological order
        for child in out[node]:
            if position[child] > position[node]:  # not a link back up a cycle
                layer[child] = max(layer[child], layer[node] + 1)
    return layer


def finish_order(ids: list[str], out: dict[str, list[str]]) -> list[str]:
    """The nodes in the order an iterative depth-first walk finishes them (reversed: a
    topological order of the graph without the links that close cycles)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in ids:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                order.append(node)
                stack.pop()
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(out[child])))
    return order


def place(nodes: list[Node], links: list[tuple[str, str]]) -> None:
    """Columns by layer; within one, by the mean row of each node's starters."""
    starters: dict[str, list[str]] = defaultdict(list)
    for source, target in links:
        starters[target].append(source)
    columns: dict[int, list[Node]] = defaultdict(list)
    for node in nodes:
        columns[node.layer].append(node)
    row: dict[str, float] = {}
    for layer in sorted(columns):
        column = columns[layer]

        def weight(node: Node) -> tuple[float, str]:
            seen = [row[s] for s in starters[node.id] if s in row]
            return (sum(seen) / len(seen) if seen else float("inf"), node.id)

        for i, node in enumerate(sorted(column, key=weight)):
            row[node.id] = i
            node.x = MARGIN + layer * (NODE_W + GAP_X)
            node.y = TOP + i * (NODE_H + GAP_Y)


def route(edge: Edge, source: Node, target: Node, nth: int) -> None:
    """A curve from the source's right side to the target's left; a link back (or within
    one column) arcs over, from the source's top to the target's; one from a model to
    itself, a loop over it. `nth` spreads the links between one pair of models."""
    spread = nth * 14
    if source is target:
        x, y = source.x + NODE_W / 2, source.y
        top = y - 40 - spread
        edge.path = f"M{x - 30},{y} C{x - 50},{top} {x + 50},{top} {x + 30},{y}"
        edge.label_x, edge.label_y = x, y - 34 - spread
        return
    x1, y1 = source.x + NODE_W, source.y + NODE_H / 2 + spread / 2
    x2, y2 = target.x, target.y + NODE_H / 2 + spread / 2
    if target.layer > source.layer:
        bend = (x2 - x1) / 2
        edge.path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
        edge.label_x, edge.label_y = (x1 + x2) / 2, (y1 + y2) / 2 - 6
        return
    sx, sy = source.x + NODE_W / 2 + 20, source.y
    tx, ty = target.x + NODE_W / 2 - 20, target.y
    high = min(sy, ty) - 60 - spread
    edge.path = f"M{sx},{sy} C{sx},{high} {tx},{high} {tx},{ty}"
    # The curve's highest point (t = 1/2 of a cubic whose control points share `high`).
    edge.label_x, edge.label_y = (sx + tx) / 2, (sy + ty) / 8 + high * 3 / 4 - 4


def draw(models: list[Any], subs: list[Any]) -> Drawing:
    """The drawing of `models` and the subscriptions among them."""
    nodes = {m.id: Node(m.id, m.name, m.status) for m in models}
    shown = [s for s in subs if s.source_model_id in nodes and s.target_model_id in nodes]
    links = [(s.source_model_id, s.target_model_id) for s in shown]
    for node_id, layer in layers(list(nodes), links).items():
        nodes[node_id].layer = layer
    place(list(nodes.values()), links)
    edges, pairs = [], defaultdict(int)
    for sub in shown:
        pair = (sub.source_model_id, sub.target_model_id)
        edge = Edge(sub)
        route(edge, nodes[pair[0]], nodes[pair[1]], pairs[pair])
        pairs[pair] += 1
        edges.append(edge)
    width = max((n.x for n in nodes.values()), default=0) + NODE_W + MARGIN
    height = max((n.y for n in nodes.values()), default=0) + NODE_H + MARGIN
    height += 14 * max(pairs.values(), default=0)
    drawn = {s.id for s in shown}
    incomplete = [s.id for s in subs if s.id not in drawn]
    return Drawing(list(nodes.values()), edges, width, height, incomplete)
