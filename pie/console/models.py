"""Models: the searchable list, and one model's versions, handlers, contracts, job policy and
subscriptions in and out, with the lifecycle actions its user may take."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, url_for

from pie.api.base import requires, runtime
from pie.console.base import LIST_LIMIT, bp, load, render
from pie.schemas.versions import StatusChangeSchema
from pie.services import lifecycle, orchestration, registry, subscriptions


@bp.route("/models")
@requires("read_models")
def models() -> Any:
    text = request.args.get("q", "").strip()
    found = registry.find_models(text, LIST_LIMIT)
    return render("models.html", models=found, q=text, limit=LIST_LIMIT)


@bp.route("/models/<model_id>")
@requires("read_models")
def model(model_id: str) -> Any:
    found = registry.get_model(model_id)
    subs = subscriptions.of_model(model_id, g.principal.accessible_clients(), LIST_LIMIT)
    return render(
        "model.html",
        model=found,
        versions=list(lifecycle.versions_query(model_id).limit(LIST_LIMIT)),
        subs_out=[s for s in subs if s.source_model_id == model_id],
        subs_in=[s for s in subs if s.target_model_id == model_id],
        transitions=lifecycle.TRANSITIONS,
        can_manage=g.principal.has("manage_models"),
    )


@bp.route("/models/<model_id>/versions/<model_version>/status", methods=["POST"])
@requires("manage_models")
def version_status(model_id: str, model_version: str) -> Any:
    """A version's status, changed as POST …/new_status changes it."""
    data = load(StatusChangeSchema(), {"status": request.form.get("status")})
    orchestration.change_status(runtime(), model_id, model_version, data["status"])
    return redirect(url_for("console.model", model_id=model_id), code=303)
