"""Signed tokens whose claims have the wrong shape: every claim PIE reads (`sub`, `scope`,
`cognito:groups`, `client_id`, `pie:job_id`, `exp`, `iat`, `nbf`) is checked, and a bad one is
a 401 naming it — never a 500, never a silently widened or narrowed principal."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.helpers import SECRET, assert_envelope, model_body

BAD_TEXT = [["acme"], 5, 1.5, {"a": 1}, True, "acme\u0000", "\ud800"]


def token(**claims) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "t", "iat": now, "exp": now + 600, **claims}, SECRET, "HS256")


# Routes that read the claim: listing clients (the caller's tenants), models (scopes), a job
# (the callback claim).
PATHS = ["/v2/clients", "/v2/models"]


@pytest.mark.parametrize("value", BAD_TEXT)
@pytest.mark.parametrize("path", PATHS)
def test_a_client_id_that_is_not_a_string_is_401(client, value, path):
    bad = token(scope="streamline/read_models streamline/read_domains", client_id=value)
    r = client.get(path, token=bad)
    assert "'client_id' claim" in assert_envelope(r, 401)["message"]


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("scope", 5),
        ("scope", {"streamline/admin": True}),
        ("scope", ["streamline/admin", 5]),
        ("scope", [["streamline/admin"]]),
        ("cognito:groups", 1),
        ("cognito:groups", {"admin": True}),
        ("cognito:groups", ["admin", None]),
        ("cognito:groups", [["admin"]]),
        ("pie:job_id", ["j"]),
        ("pie:job_id", 3),
        ("scope", "streamline/admin\u0000"),
        ("cognito:groups", ["client:\ud800"]),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_claims_of_the_wrong_type_are_401(client, claim, value, path):
    claims = {"scope": "streamline/read_models streamline/read_domains", claim: value}
    r = client.get(path, token=token(**claims))
    assert f"'{claim}' claim" in assert_envelope(r, 401)["message"]


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", str(int(time.time()) + 600)),
        ("iat", str(int(time.time()))),
        ("nbf", str(int(time.time()) - 5)),
    ],
)
def test_timestamps_must_be_numbers(client, claim, value):
    """NumericDate claims are JSON numbers; PyJWT also takes strings of digits."""
    r = client.get("/v2/models", token=token(scope="streamline/admin", **{claim: value}))
    assert f"'{claim}' claim" in assert_envelope(r, 401)["message"]


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", True),
        ("exp", None),
        ("exp", [1]),
        ("exp", "soon"),
        ("exp", "1e10"),
        ("exp", f"{int(time.time()) + 600}.5"),
        ("exp", float("nan")),
        ("exp", 1e400),
        ("iat", float("inf")),
        ("exp", 10**400),  # PyJWT takes it; the verifier's cache could not (a 500 before)
        ("sub", 7),
        ("sub", ["t"]),
    ],
)
def test_other_malformed_claims_are_401(client, claim, value):
    r = client.get("/v2/models", token=token(scope="streamline/admin", **{claim: value}))
    assert_envelope(r, 401)


def test_well_formed_claims_pass(client):
    """The control: the same shapes done right (groups as a list or one string, scope as a
    string or a list, a float exp) are accepted."""
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    now = time.time()
    for claims in (
        {"scope": "streamline/read_models", "client_id": "acme", "sub": "t"},
        {"scope": ["streamline/read_models"], "client_id": None},
        {"cognito:groups": ["client:acme"], "exp": now + 600.5, "iat": now},
        {"cognito:groups": "admin", "nbf": int(now) - 5},
    ):
        r = client.get("/v2/models", token=token(**claims))
        assert r.status_code == 200, (claims, r.get_json())
        assert [m["id"] for m in r.get_json()] == ["m1"]
