"""Authentication (HS256 secret, JWKS RS256/ES256) and operation permissions over HTTP."""

import base64
import hashlib
import hmac
import json
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

import pie.cli
from tests.helpers import SECRET, Client, assert_envelope, make_token, model_body, scoped

# --- the Authorization header -------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict, claims: dict, key: bytes | None) -> str:
    """A JWT assembled by hand, so tests can build tokens PyJWT refuses to sign."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return f"{signing_input}."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**extra) -> dict:
    now = int(time.time())
    return {"sub": "t", "iat": now, "exp": now + 600, "scope": "streamline/admin", **extra}


def test_missing_header_is_401(anon):
    assert "Authorization" in assert_envelope(anon.get("/v2/models"), 401)["message"]


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {base64.b64encode(b'user:pass').decode()}",
        f"Token {make_token(scope='streamline/admin')}",
        "Bearer",
        "Bearer ",
        make_token(scope="streamline/admin"),  # the token without a scheme
    ],
)
def test_non_bearer_scheme_is_401(anon, header):
    assert_envelope(anon.get("/v2/models", headers={"Authorization": header}), 401)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30."])
def test_garbage_token_is_401(client, token):
    assert_envelope(client.get("/v2/models", token=token), 401)


def test_expired_token_is_401(client):
    r = client.get("/v2/models", token=make_token(scope="streamline/admin", ttl=-30))
    assert "expired" in assert_envelope(r, 401)["message"].lower()


def test_token_signed_with_other_secret_is_401(client):
    token = make_token(scope="streamline/admin", secret="another-secret-0123456789abcdefghijklmn")
    assert_envelope(client.get("/v2/models", token=token), 401)


def test_token_without_exp_is_401(client):
    claims = _claims()
    del claims["exp"]
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert "exp" in assert_envelope(client.get("/v2/models", token=token), 401)["message"]


def test_alg_none_token_is_401(client):
    token = _raw_token({"alg": "none", "typ": "JWT"}, _claims(), None)
    assert_envelope(client.get("/v2/models", token=token), 401)


def test_rs256_token_without_jwks_is_401(client):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), key, algorithm="RS256")
    assert_envelope(client.get("/v2/models", token=token), 401)


def test_valid_hs256_token_is_accepted(client):
    """The control for the rejections above: the same claims, correctly signed, pass."""
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert client.get("/v2/models", token=token).status_code == 200


# --- permissions --------------------------------------------------------------------------


def test_read_scope_cannot_create(client):
    r = client.post("/v2/models", json=model_body(), token=scoped("read_models"))
    assert "manage_models" in assert_envelope(r, 403)["message"]
    assert client.get("/v2/models/m1").status_code == 404


def test_read_scope_can_read(client):
    assert client.post("/v2/models", json=model_body()).status_code == 201
    token = scoped("read_models")
    assert client.get("/v2/models", token=token).status_code == 200
    assert client.get("/v2/models/m1", token=token).status_code == 200
    assert client.get("/v2/models/m1/versions", token=token).status_code == 200
    assert client.get("/v2/models/m1/versions/1", token=token).status_code == 200


def test_manage_scope_does_not_grant_read(client):
    token = scoped("manage_models")
    assert client.post("/v2/models", json=model_body(), token=token).status_code == 201
    assert_envelope(client.get("/v2/models/m1", token=token), 403)


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v2/models"),
        ("PUT", "/v2/models/m1"),
        ("POST", "/v2/models/m1/new_version"),
        ("POST", "/v2/models/m1/versions/1/new_status"),
    ],
)
def test_forbidden_comes_before_body_validation(client, method, path):
    assert client.post("/v2/models", json=model_body()).status_code == 201
    invalid = {"not": "valid", "status": 17}
    r = client.request(method, path, json=invalid, token=scoped("read_models"))
    assert_envelope(r, 403)


def test_unauthenticated_comes_before_body_validation(anon):
    assert_envelope(anon.post("/v2/models", json={"bogus": True}), 401)


@pytest.mark.parametrize(
    "token",
    [
        make_token(scope="streamline/admin"),
        make_token(groups=["admin"]),
        make_token(groups=["client:acme", "admin"]),
    ],
    ids=["admin-scope", "admin-group", "admin-among-groups"],
)
def test_admin_can_do_everything(client, token):
    assert client.post("/v2/models", json=model_body(), token=token).status_code == 201
    assert client.get("/v2/models/m1", token=token).status_code == 200
    r = client.post("/v2/models/m1/versions/1/new_status", json={"status": "active"}, token=token)
    assert r.status_code == 200
    assert client.delete("/v2/models/m1", token=token).status_code == 204


def test_human_client_group_reads_but_cannot_create(client):
    assert client.post("/v2/models", json=model_body()).status_code == 201
    human = make_token(groups=["client:acme"])
    assert client.get("/v2/models", token=human).status_code == 200
    assert client.get("/v2/models/m1", token=human).status_code == 200
    assert_envelope(client.post("/v2/models", json=model_body("m2"), token=human), 403)
    assert_envelope(client.put("/v2/models/m1", json=model_body(None), token=human), 403)
    assert_envelope(client.delete("/v2/models/m1", token=human), 403)


def test_token_without_permissions_is_403(client):
    assert_envelope(client.get("/v2/models", token=make_token()), 403)
    assert_envelope(client.get("/v2/models", token=make_token(groups=["not-a-client"])), 403)


def test_callback_token_has_no_general_permission(client):
    token = make_token(scope="streamline/admin streamline/read_models", **{"pie:job_id": "j1"})
    assert_envelope(client.get("/v2/models", token=token), 403)
    assert_envelope(client.post("/v2/models", json=model_body(), token=token), 403)


# --- JWKS: RS256 / ES256 ------------------------------------------------------------------

ISSUER = "https://issuer.example.test/pool"
AUDIENCE = "pie-api"


class _Jwks:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        keys = []
        for kid, alg, public, algorithm in [
            ("rsa-1", "RS256", self.rsa.public_key(), RSAAlgorithm),
            ("ec-1", "ES256", self.ec.public_key(), ECAlgorithm),
        ]:
            jwk = algorithm.to_jwk(public, as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        self.document = json.dumps({"keys": keys}).encode()
        self.requests = 0

    def token(self, kid: str, key=None, **overrides) -> str:
        claims = {**_claims(iss=ISSUER, aud=AUDIENCE), **overrides}
        claims = {k: v for k, v in claims.items() if v is not None}
        alg = "RS256" if kid.startswith("rsa") else "ES256"
        key = key or (self.rsa if alg == "RS256" else self.ec)
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def jwks():
    keys = _Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's naming)
            keys.requests += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(keys.document)))
            self.end_headers()
            self.wfile.write(keys.document)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    keys.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    yield keys
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def jwks_client(make_app, jwks):
    app = make_app(
        {"PIE_JWKS_URL": jwks.url, "PIE_JWT_ISSUER": ISSUER, "PIE_JWT_AUDIENCE": AUDIENCE}
    )
    return Client(app.test_client(), token=None)


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_jwks_token_is_accepted(jwks_client, jwks, kid):
    token = jwks.token(kid)
    assert jwks_client.post("/v2/models", json=model_body(), token=token).status_code == 201
    assert jwks_client.get("/v2/models/m1", token=token).status_code == 200
    assert jwks.requests >= 1


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://someone-else.example.test/pool"},
        {"iss": None},
        {"aud": "another-api"},
        {"aud": None},
        {"exp": int(time.time()) - 60},
    ],
    ids=["wrong-issuer", "no-issuer", "wrong-audience", "no-audience", "expired"],
)
def test_jwks_token_with_bad_claims_is_401(jwks_client, jwks, kid, overrides):
    assert_envelope(jwks_client.get("/v2/models", token=jwks.token(kid, **overrides)), 401)


def test_jwks_unknown_kid_is_401(jwks_client, jwks):
    assert_envelope(jwks_client.get("/v2/models", token=jwks.token("rsa-unknown")), 401)


def test_jwks_known_kid_with_foreign_key_is_401(jwks_client, jwks):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_envelope(jwks_client.get("/v2/models", token=jwks.token("rsa-1", key=other)), 401)


def test_jwks_ec_kid_with_rsa_algorithm_is_401(jwks_client, jwks):
    token = jwt.encode(
        _claims(iss=ISSUER, aud=AUDIENCE), jwks.rsa, "RS256", headers={"kid": "ec-1"}
    )
    assert_envelope(jwks_client.get("/v2/models", token=token), 401)


def test_algorithm_confusion_is_401(jwks_client, jwks):
    """HS256 signed with the RSA public key's PEM as the HMAC secret must not verify."""
    pem = jwks.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = _claims(iss=ISSUER, aud=AUDIENCE)
    for key in (pem, pem.strip()):
        token = _raw_token({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims, key)
        assert_envelope(jwks_client.get("/v2/models", token=token), 401)


def test_jwks_app_still_checks_hs256_issuer_and_audience(jwks_client):
    """With an issuer and audience configured, HS256 tokens must carry them too."""
    assert_envelope(jwks_client.get("/v2/models", token=make_token(scope="streamline/admin")), 401)
    token = make_token(scope="streamline/admin", iss=ISSUER, aud=AUDIENCE)
    assert jwks_client.get("/v2/models", token=token).status_code == 200


# --- `pie token` --------------------------------------------------------------------------


def _cli_env(tmp_path, secret: str | None) -> dict:
    return {
        "PIE_DATABASE_URL": f"sqlite:///{tmp_path}/cli/pie.sqlite",
        "PIE_JWT_SECRET": secret,
        "PIE_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "PIE_EMBEDDED_WORKER": "0",
        "PIE_JWKS_URL": None,
        "PIE_JWT_ISSUER": None,
        "PIE_JWT_AUDIENCE": None,
        "PIE_DISABLED_PLUGINS": None,
    }


def _mint(tmp_path, args: list[str], secret: str | None = SECRET) -> str:
    result = CliRunner().invoke(pie.cli.main, ["token", *args], env=_cli_env(tmp_path, secret))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output.strip()


def test_cli_admin_token_works(tmp_path, make_app):
    token = _mint(tmp_path, ["--admin"])
    api = Client(make_app().test_client(), token=token)  # same secret as the CLI
    assert api.post("/v2/models", json=model_body()).status_code == 201
    assert api.get("/v2/models/m1").status_code == 200


def test_cli_scoped_token_is_limited(tmp_path, make_app):
    token = _mint(tmp_path, ["--scope", "read_models", "--client-id", "acme", "--ttl", "120"])
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["scope"] == "streamline/read_models" and claims["client_id"] == "acme"
    assert 100 <= claims["exp"] - time.time() <= 120
    api = Client(make_app().test_client(), token=token)
    assert api.get("/v2/models").status_code == 200
    assert_envelope(api.post("/v2/models", json=model_body()), 403)


def test_cli_token_from_other_secret_is_rejected(tmp_path, make_app):
    token = _mint(tmp_path, ["--admin"], secret="a-different-secret-0123456789abcdefghij")
    assert_envelope(Client(make_app().test_client(), token=token).get("/v2/models"), 401)


def test_cli_token_needs_a_grant(tmp_path):
    env = _cli_env(tmp_path, SECRET)
    result = CliRunner().invoke(pie.cli.main, ["token"], env=env)
    assert result.exit_code != 0


def test_cli_signs_with_the_secret_the_server_generated(tmp_path, make_app):
    """`pie token` reads the secret the server created beside the database; it creates none
    itself, so a token can never be signed with a secret no server uses."""
    env = _cli_env(tmp_path, None)
    missing = CliRunner().invoke(pie.cli.main, ["token", "--admin"], env=env)
    path = tmp_path / "cli" / "pie-jwt-secret"
    assert missing.exit_code == 1
    assert f"no token secret at {path}" in missing.output
    assert "PIE_JWT_SECRET" in missing.output
    assert not (tmp_path / "cli").exists() and not (tmp_path / "cli-instance").exists()

    server = pie.create_app(
        {
            "PIE_DATABASE_URL": env["PIE_DATABASE_URL"],
            "PIE_INSTANCE_PATH": env["PIE_INSTANCE_PATH"],
            "PIE_LOAD_ENTRY_POINTS": False,
            "PIE_EMBEDDED_WORKER": False,
        }
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32 and server.config["PIE_JWT_SECRET"] == secret
    token = _mint(tmp_path, ["--admin"], secret=None)
    assert jwt.decode(token, secret, algorithms=["HS256"])["scope"] == "streamline/admin"
    assert path.read_text().strip() == secret  # unchanged
    api = Client(server.test_client(), token=token)
    assert api.get("/v2/models").status_code == 200
    server.extensions["pie"].close()


def test_an_in_memory_database_keeps_its_secret_in_the_instance_folder(tmp_path, monkeypatch):
    """`sqlite:///:memory:` has no folder: the secret goes to the instance folder, not to
    the working directory."""
    monkeypatch.chdir(tmp_path)
    instance = tmp_path / "instance"
    app = pie.create_app(
        {
            "PIE_DATABASE_URL": "sqlite:///:memory:",
            "PIE_INSTANCE_PATH": str(instance),
            "PIE_LOAD_ENTRY_POINTS": False,
            "PIE_EMBEDDED_WORKER": False,
        }
    )
    assert (instance / "pie-jwt-secret").read_text().strip() == app.config["PIE_JWT_SECRET"]
    assert not (tmp_path / "pie-jwt-secret").exists()
    app.extensions["pie"].close()
