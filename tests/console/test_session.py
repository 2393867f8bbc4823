"""Signing in to the console: the token is verified as the API verifies it, the session is an
HttpOnly SameSite=Strict cookie, forms need the CSRF token, signing out clears it."""

from __future__ import annotations

import peewee
import pytest

from tests.console.helpers import Console, signed_in
from tests.helpers import ADMIN, make_token, scoped


def test_pages_redirect_to_sign_in(client):
    raw = client.raw
    response = raw.get("/ui/models?q=x")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/sign-in?next=/ui/models?q%3Dx"
    page = raw.get("/ui/sign-in")
    assert page.status_code == 200 and "text/html" in page.content_type
    assert 'name="token"' in page.get_data(as_text=True)


def test_sign_in_sets_a_strict_http_only_cookie(app):
    console = Console(app.test_client())
    console.get("/ui/sign-in")
    response = console.post("/ui/sign-in", {"token": ADMIN, "next": "/ui/models?q=m"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/models?q=m"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it
    assert ADMIN not in cookie  # the token is inside a signed value, not the bare token
    assert console.get("/ui/models").status_code == 200


def test_secure_cookie_over_https(app):
    console = Console(app.test_client())
    console.get("/ui/sign-in", base_url="https://localhost")
    form = {"token": ADMIN, "csrf_token": console.csrf}
    response = console.raw.post("/ui/sign-in", data=form, base_url="https://localhost")
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "token, status",
    [
        ("not-a-token", 401),
        (make_token(scope="streamline/admin", ttl=-10), 401),
        (make_token(scope="streamline/admin", secret="another-secret-0123456789abcdef0123"), 401),
        (make_token(**{"pie:job_id": "j1"}), 403),
    ],
)
def test_bad_tokens_do_not_sign_in(app, token, status):
    console = Console(app.test_client())
    console.get("/ui/sign-in")
    response = console.post("/ui/sign-in", {"token": token})
    assert response.status_code == status
    assert 'role="alert"' in response.get_data(as_text=True)
    assert console.raw.get("/ui/models").status_code == 302


def test_sign_in_needs_the_csrf_token(app):
    console = Console(app.test_client())
    console.get("/ui/sign-in")
    response = console.post("/ui/sign-in", {"token": ADMIN, "csrf_token": "forged"})
    assert response.status_code == 403
    assert console.raw.get("/ui/models").status_code == 302


def test_next_never_leaves_the_console(app):
    console = Console(app.test_client())
    for target in ("https://evil.example/ui/x", "//evil.example/ui/", "/v2/models"):
        console.get("/ui/sign-in")  # each sign-in issues a new CSRF token
        response = console.post("/ui/sign-in", {"token": ADMIN, "next": target})
        assert response.headers["Location"] == "/ui/models", target


def test_forms_need_the_csrf_token(app, client):
    assert client.post("/v2/models", json={**_model("m")}).status_code == 201
    console = signed_in(app, ADMIN)
    path = "/ui/models/m/versions/1/status"
    assert console.post(path, {"status": "training"}, csrf=False).status_code == 403
    assert console.post(path, {"status": "training", "csrf_token": "x"}).status_code == 403
    assert client.get("/v2/models/m/versions/1").get_json()["status"] == "pending"
    assert console.post(path, {"status": "training"}).status_code == 303
    assert client.get("/v2/models/m/versions/1").get_json()["status"] == "training"


def test_sign_out_clears_the_session(app):
    console = signed_in(app, ADMIN)
    assert console.post("/ui/sign-out", csrf=False).status_code == 403  # CSRF here too
    response = console.post("/ui/sign-out")
    assert response.status_code == 303
    assert "pie_console=;" in response.headers["Set-Cookie"]
    assert console.raw.get("/ui/models").status_code == 302


def test_a_token_that_stops_verifying_ends_the_session(app, client):
    console = signed_in(app, make_token(scope="streamline/read_models", ttl=2))
    import time

    time.sleep(3.1)
    app.extensions["pie"].verifier._cache.clear()
    response = console.get("/ui/models")
    assert response.status_code == 401 and 'name="token"' in response.get_data(as_text=True)
    assert console.raw.get("/ui/jobs").status_code == 302  # the token is gone from the cookie
    again = console.post("/ui/sign-in", {"token": ADMIN, "next": "/ui/models"})
    assert again.status_code == 303  # with the form the 401 page showed


def test_htmx_refreshes_send_the_page_to_sign_in(app):
    console = Console(app.test_client())
    response = console.raw.get("/ui/jobs/rows", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/ui/sign-in?next=/ui/jobs/rows"


def test_static_files_set_no_cookie(app):
    response = app.test_client().get("/ui/static/console.css")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_a_tampered_cookie_is_no_session(app):
    console = signed_in(app, scoped("read_models"))
    cookie = console.raw.get_cookie("pie_console", path="/ui")
    console.raw.set_cookie("pie_console", cookie.value[:-2] + "xx", path="/ui")
    assert console.raw.get("/ui/models").status_code == 302


def test_pages_are_html_with_security_headers(app):
    console = signed_in(app, ADMIN)
    response = console.get("/ui/models")
    assert response.content_type.startswith("text/html")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_missing_things_are_html_404_pages(app):
    console = signed_in(app, ADMIN)
    for path in ("/ui/models/nope", "/ui/no-such-page", "/ui/models/nope/versions/1/status"):
        response = console.get(path)
        assert response.status_code == 404, path
        assert response.content_type.startswith("text/html"), path
        assert "<h1>404 Not Found</h1>" in response.get_data(as_text=True)
    for method in ("PUT", "DELETE", "PATCH"):  # no such form: refused as HTML, not JSON
        response = console.raw.open("/ui/models", method=method)
        assert response.status_code == 403 and response.content_type.startswith("text/html")


def test_permission_refusals_are_html_403_pages(app):
    console = signed_in(app, scoped("read_domains"))
    response = console.get("/ui/models")
    assert response.status_code == 403
    assert "streamline/read_models" in response.get_data(as_text=True)


def test_htmx_is_served_from_the_console(app):
    response = app.test_client().get("/ui/static/htmx.min.js")
    assert response.status_code == 200 and b"htmx" in response.data[:2000]


def _model(model_id):
    from tests.helpers import model_body

    return model_body(model_id)


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_a_jwks_identitys_token_signs_in(jwks_client, jwks, kid):
    app = jwks_client.raw.application
    console = signed_in(app, jwks.token(kid))
    assert console.get("/ui/models").status_code == 200
    wrong = Console(app.test_client())
    wrong.get("/ui/sign-in")
    response = wrong.post("/ui/sign-in", {"token": jwks.token(kid, aud="another-api")})
    assert response.status_code == 401 and "audience" in response.get_data(as_text=True).lower()


@pytest.mark.parametrize(
    "error, status",
    [(RuntimeError("a bug"), 500), (peewee.OperationalError("connection refused"), 503)],
)
def test_failures_are_html_pages_that_tell_nothing(app, monkeypatch, error, status):
    from pie.services import registry

    def broken(*args, **kwargs):
        raise error

    console = signed_in(app, ADMIN)
    monkeypatch.setattr(registry, "find_models", broken)
    response = console.get("/ui/models")
    assert response.status_code == status
    assert response.content_type.startswith("text/html")
    text = response.get_data(as_text=True)
    assert f"<h1>{status} " in text and str(error) not in text


def test_the_cookie_does_not_hold_the_token_readably(app):
    """The cookie was signed only: base64 and zlib gave back the bearer token (an attacker's
    review). It is sealed with AES-GCM now."""
    import base64
    import zlib

    console = signed_in(app, ADMIN)
    value = console.raw.get_cookie("pie_console", path="/ui").value
    claims = ADMIN.split(".")[1]
    for part in value.replace(".", " ").split():
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        assert claims.encode() not in raw and b"eyJ" not in raw
        try:
            assert b"eyJ" not in zlib.decompress(raw)
        except zlib.error:
            pass


def test_a_cookie_older_than_a_working_day_is_no_session(app, monkeypatch):
    import time

    from pie.console import session

    console = signed_in(app, ADMIN)
    later = time.time() + session.MAX_AGE + 60
    monkeypatch.setattr(session.time, "time", lambda: later)
    assert console.raw.get("/ui/models").status_code == 302
