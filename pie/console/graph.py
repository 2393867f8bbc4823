"""The chain graph (models as nodes, subscriptions as edges) and, for one job, the tree of jobs
its completion triggered."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, url_for

from pie.api.base import checked_job, requires, requires_job
from pie.console import layout
from pie.console.base import LIST_LIMIT, bp, render
from pie.errors import BadRequest
from pie.services import job_search, registry, subscriptions

GRAPH_LIMIT = 500  # models drawn; a registry past this wants a search, not one picture
TREE_DEPTH = 25  # levels of triggered jobs read (chains are budgeted far below this)


@bp.route("/graph")
@requires("read_models")
def graph() -> Any:
    """Two statements: the models, and the subscriptions the caller sees."""
    models = registry.find_models("", GRAPH_LIMIT)
    subs = list(subscriptions.visible(None, g.principal.accessible_clients()).limit(GRAPH_LIMIT))
    drawing = layout.draw(models, subs)
    focus = request.args.get("model")
    return render("graph.html", drawing=drawing, focus=focus, layout=layout)


@bp.route("/graph/tree")
@requires("read_models")
def find_tree() -> Any:
    """The graph page's form: a job id, to the tree of what its completion set off."""
    job_id = request.args.get("job_id", "").strip()
    if not job_id:
        raise BadRequest("enter a job id")
    return redirect(url_for("console.job_tree", job_id=job_id), code=303)


@bp.route("/jobs/<job_id>/tree")
@requires_job("read_models")
def job_tree(job_id: str) -> Any:
    """One statement for the job, then one per level of the jobs its completion started."""
    root = checked_job(job_id)
    clients = g.principal.accessible_clients()
    children: dict[str, list[Any]] = {}
    level, total = [root.job_id], 1
    for _ in range(TREE_DEPTH):
        found = job_search.children(level, LIST_LIMIT, clients) if level else []
        for job in found:
            children.setdefault(job.parent_job_id, []).append(job)
        level, total = [job.job_id for job in found], total + len(found)
        if not found or total >= LIST_LIMIT:
            break
    return render("job_tree.html", root=root, children=children, total=total)
