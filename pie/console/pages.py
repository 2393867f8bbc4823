"""Signing in and out, the console's home, and the 404 page of every unknown /ui path."""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request, url_for

from pie.console import session
from pie.console.base import bp, render, safe_next
from pie.errors import NotFound, PieError


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """Paste a token; it is verified as the API verifies a bearer token."""
    target = request.values.get("next")
    if request.method == "GET":
        return render("sign_in.html", next=target)
    token = request.form.get("token", "").strip()
    if not token:
        return render("sign_in.html", 400, error="paste a token to sign in", next=target)
    try:
        signed_in = session.sign_in(token)
    except PieError as exc:
        return render("sign_in.html", exc.status, error=exc.message, next=target)
    response = redirect(safe_next(target), code=303)
    session.store(response, signed_in)
    return response


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    """Forget the session: the cookie is cleared (the form carries the CSRF token)."""
    return session.clear(redirect(url_for("console.sign_in"), code=303))


@bp.route("/")
def home() -> Response:
    return redirect(url_for("console.models"))


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str) -> Any:
    raise NotFound(f"there is no console page at /ui/{rest}")
