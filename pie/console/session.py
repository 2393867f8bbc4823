"""The console's session: the pasted token, sealed (encrypted and authenticated) into an
HttpOnly SameSite=Strict cookie, and the CSRF token every state-changing form carries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Response, current_app, g, request

from pie import auth
from pie.api.base import principal_for
from pie.errors import Forbidden

COOKIE = "pie_console"
PATH = "/ui"
MAX_AGE = 12 * 3600  # a session outlives no working day, whatever its token's `exp`
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    """What the cookie holds: a CSRF token always, the bearer token once signed in."""

    csrf: str
    token: str | None = None


def _box() -> AESGCM:
    """Cookies are encrypted and authenticated (AES-256-GCM) with a key derived from the HS256
    secret (never the secret itself): a cookie cannot be forged, altered or read — it holds
    the bearer token — and a new secret ends every session."""
    secret = current_app.config["PIE_JWT_SECRET"].encode("utf-8")
    return AESGCM(hmac.new(secret, b"pie console session cookie", hashlib.sha256).digest())


def _seal(data: dict) -> str:
    nonce = secrets.token_bytes(12)
    sealed = _box().encrypt(nonce, json.dumps(data).encode("utf-8"), COOKIE.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _open(cookie: str) -> dict:
    """The cookie's data; ValueError when it was not sealed here or is older than MAX_AGE."""
    try:
        raw = base64.urlsafe_b64decode(cookie.encode("ascii"))
        data = json.loads(_box().decrypt(raw[:12], raw[12:], COOKIE.encode()))
    except (InvalidTag, binascii.Error, UnicodeError, ValueError) as exc:
        raise ValueError("not a console cookie") from exc
    if not isinstance(data, dict) or not 0 <= time.time() - data.get("at", -1e18) <= MAX_AGE:
        raise ValueError("an expired console cookie")
    return data


def current() -> Session:
    """This request's session (a fresh one, not yet stored, when the cookie is absent or bad)."""
    session = g.get("console_session")
    if session is None:
        session = g.console_session = _read(request.cookies.get(COOKIE))
    return session


def _read(cookie: str | None) -> Session:
    if cookie:
        try:
            data = _open(cookie)
            return Session(csrf=str(data["c"]), token=data.get("t"))
        except (ValueError, KeyError, TypeError):
            pass
    g.console_fresh = True
    return Session(csrf=secrets.token_urlsafe(32))


def store(response: Response, session: Session) -> None:
    value = _seal({"c": session.csrf, "t": session.token, "at": time.time()})
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE,
        path=PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )


def sign_in(token: str) -> Session:
    """Verify a pasted token exactly as the API does (signature, expiry, issuer, audience,
    suspended clients); a job's callback token cannot sign in. A new CSRF token is issued."""
    principal = principal_for(token)
    if principal.job_id is not None:
        raise Forbidden("a job's callback token cannot sign in to the console")
    g.principal = principal
    return Session(csrf=secrets.token_urlsafe(32), token=token)


def principal() -> auth.Principal | None:
    """The signed-in principal, put where the API's checks look for it (`g.principal`); None
    when nobody is signed in. A token that no longer verifies (expired, a client suspended
    since) raises the API's 401 or 403."""
    if "principal" in g:
        return g.principal
    token = current().token
    if token is None:
        return None
    g.principal = principal_for(token)
    return g.principal


def check_csrf() -> None:
    """Every state-changing request carries the session's CSRF token (a form field or the
    X-CSRF-Token header)."""
    sent = request.form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token") or ""
    if not hmac.compare_digest(sent.encode("utf-8"), current().csrf.encode("utf-8")):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")


def remember(response: Response) -> Response:
    """after_request: a visitor without a valid cookie gets one holding a CSRF token, so that
    the sign-in form carries one too (no login CSRF)."""
    if g.get("console_fresh") and COOKIE not in _set_cookies(response):
        store(response, current())
    return response


def forget_token(response: Response) -> Response:
    """Keep the session's CSRF token (the sign-in form on this page carries it), drop the
    token that no longer verifies."""
    store(response, Session(csrf=current().csrf))
    return response


def clear(response: Response) -> Response:
    response.delete_cookie(
        COOKIE, path=PATH, secure=request.is_secure, httponly=True, samesite="Strict"
    )
    return response


def _set_cookies(response: Response) -> list[str]:
    return [value.split("=", 1)[0] for value in response.headers.getlist("Set-Cookie")]
