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
        ("exp", str(int(time.time()) + 10 * 365 * 86400)),  # collected long before it runs
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


def signed(payload: str, header: str = '{"alg":"HS256","typ":"JWT"}') -> str:
    """A token signed with the right secret whose JSON text is written by hand."""
    import base64
    import hashlib
    import hmac

    def b64(text: bytes) -> str:
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode()

    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_a_repeated_claim_is_401_whichever_copy_a_parser_would_keep(client):
    """A proxy that keeps the first `client_id` and PIE that kept the last would disagree on
    the tenant; such a token is refused (in the payload and in the header)."""
    exp = int(time.time()) + 600
    control = signed(
        f'{{"sub":"t","exp":{exp},"client_id":"acme","scope":"streamline/read_domains"}}'
    )
    assert client.get("/v2/clients", token=control).status_code == 200
    payload = (
        f'{{"sub":"t","exp":{exp},"client_id":"acme","scope":"streamline/read_domains",'
        '"client_id":"beta"}'
    )
    r = client.get("/v2/clients", token=signed(payload))
    assert "repeats the 'client_id' claim" in assert_envelope(r, 401)["message"]
    header = '{"alg":"HS256","typ":"JWT","alg":"HS256"}'
    r = client.get("/v2/clients", token=signed(f'{{"sub":"t","exp":{exp}}}', header))
    assert "repeats the 'alg' claim" in assert_envelope(r, 401)["message"]


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\t", "\n", "\x1f", "\u3000"])
def test_scopes_are_split_at_the_space_character_only(client, space):
    """`custom<no-break space>streamline/admin` is one (unknown) scope, not admin."""
    client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"})
    bad = token(scope=f"streamline/read_models{space}streamline/admin")
    r = client.post("/v2/clients", json={"client_id": "evil", "name": "Evil"}, token=bad)
    assert_envelope(r, 403)
    r = client.get("/v2/models", token=bad)
    assert_envelope(r, 403)
    spaced = token(scope="  streamline/read_models   streamline/read_domains ")
    assert client.get("/v2/models", token=spaced).status_code == 200


@pytest.mark.parametrize("claim", ["client_id", "pie:job_id"])
def test_an_empty_tenant_or_job_claim_is_401_not_an_operators_token(client, claim):
    """`"client_id": ""` read as no client: an operator's token."""
    bad = token(scope="streamline/read_models streamline/manage_models", **{claim: ""})
    r = client.get("/v2/models", token=bad)
    assert f"the '{claim}' claim is empty" in assert_envelope(r, 401)["message"]
