"""Token verification (HS256 secret, RS256/ES256 JWKS), permissions and tenant access."""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt

from pie.config import ConfigurationError
from pie.errors import Forbidden, Unauthorized
from pie.jsonio import LONE_SURROGATE, repeated_key
from pie.scopes import ADMIN_SCOPE, SCOPE_PREFIX

CALLBACK_CLAIM = "pie:job_id"
ATTEMPT_CLAIM = "pie:attempt"  # a callback token's attempt of its job (issue 15)

# What a human `client:X` group grants on tenant X; `read_models` it grants everywhere.
HUMAN_TENANT_PERMISSIONS = frozenset(
    {"read_domains", "manage_domains", "init_services", "run_inference", "run_training"}
)
JWKS_ALGORITHMS = ("RS256", "ES256")
CACHE_SIZE = 4096
CACHE_SECONDS = 300


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    subject: str | None = None
    scopes: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    client_id: str | None = None
    job_id: str | None = None  # set on job-scoped callback tokens only
    attempt: int | None = None  # the callback token's attempt (None: a token without one)
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Clients of the token that are suspended (found per request, pie.api.base): it reaches
    # none of their things, as if it had no access to them.
    suspended: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.groups or ADMIN_SCOPE in self.scopes

    @cached_property
    def _named_clients(self) -> frozenset[str]:
        """The clients of the token's `client:X` groups, suspended ones included."""
        return frozenset(g[len("client:") :] for g in self.groups if g.startswith("client:"))

    @cached_property
    def group_clients(self) -> frozenset[str]:
        return self._named_clients - self.suspended

    @cached_property
    def tenants(self) -> frozenset[str]:
        """The clients the token is bound to (its `client_id` claim and `client:X` groups),
        suspended ones included; empty for an operator's token. Admins reach every client
        whatever it says."""
        return self._named_clients | ({self.client_id} if self.client_id else frozenset())

    @property
    def is_tenant_bound(self) -> bool:
        """A tenant's token: bound to a client and not an admin's. What is global (jobs and
        subscriptions of no client) it may read and use, not change for everyone."""
        return bool(self.tenants) and not self.is_admin

    def subscription_owner(self) -> str | None:
        """The client a subscription this token makes belongs to: its own when it is a
        tenant's token, none (a global subscription) for an operator's or an admin's; 403
        when it is bound to several clients (which one is not for PIE to guess)."""
        if not self.is_tenant_bound:
            return None
        if len(self.tenants) > 1:
            names = ", ".join(sorted(self.tenants))
            raise Forbidden(
                f"this token belongs to several clients ({names}), and a subscription it "
                "makes would belong to one of them: make it through that client's assignment"
            )
        (owner,) = self.tenants
        return owner

    def can_access(self, client_id: str) -> bool:
        """Tenant access: admin, the machine token's own tenant, or a `client:X` group (not
        a suspended one)."""
        if self.job_id is not None:
            return False
        if self.is_admin:
            return True
        own = self.client_id == client_id and client_id not in self.suspended
        return own or client_id in self.group_clients

    def has(self, permission: str, client_id: str | None = None) -> bool:
        """Operation permission; `client_id` is the tenant of the route, when it has one."""
        if self.job_id is not None:
            return False  # callback tokens pass only the job-scoped checks
        if self.is_admin:
            return True
        if f"{SCOPE_PREFIX}{permission}" in self.scopes:
            return True
        clients = self.group_clients
        if permission == "read_models" or (permission == "read_domains" and client_id is None):
            return bool(clients)  # reading models, or listing the clients the groups name
        return permission in HUMAN_TENANT_PERMISSIONS and client_id in clients

    def accessible_clients(self) -> frozenset[str] | None:
        """Client ids this caller may see, or None for all (admin)."""
        if self.is_admin:
            return None
        own = {self.client_id} if self.client_id else set()
        return (frozenset(own) - self.suspended) | self.group_clients


def require(principal: Principal, permission: str, client_id: str | None = None) -> None:
    """Raise 403 unless the caller has the permission (and tenant access, on tenant routes)."""
    if not principal.has(permission, client_id):
        raise Forbidden(f"this token lacks the permission '{SCOPE_PREFIX}{permission}'")
    if client_id is not None and not principal.can_access(client_id):
        raise Forbidden(f"this token has no access to client '{client_id}'")


def require_tenant(principal: Principal, client_id: str | None) -> None:
    if client_id is not None and not principal.can_access(client_id):
        raise Forbidden(f"this token has no access to client '{client_id}'")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The principal a verified token's claims describe; 401 when a claim PIE reads has a
    type the token format does not allow (a list as `client_id`, a number as `scope`, …)."""
    scope = _claim(claims, "scope", lists=True) or ""
    groups = _claim(claims, "cognito:groups", lists=True) or []
    return Principal(
        subject=_claim(claims, "sub"),
        scopes=frozenset(split_scopes(scope)),
        groups=frozenset([groups] if isinstance(groups, str) else groups),
        client_id=_claim(claims, "client_id", nonempty=True),
        job_id=_claim(claims, CALLBACK_CLAIM, nonempty=True),
        attempt=_attempt_claim(claims),
        claims=claims,
    )


def split_scopes(scope: str | list[str]) -> list[str]:
    """RFC 6749 3.3: scopes are separated by the space character only. str.split() would also
    cut at a no-break space or U+2003 and turn one odd scope of an identity provider into
    several, `streamline/admin` among them. A list claim holds one scope per item."""
    items = scope if isinstance(scope, list) else scope.split(" ")
    return [item for item in items if item]


def _unique_claims(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise Unauthorized(f"invalid token: it repeats the {repeated_key(pairs)!r} claim")
    return obj


_CLAIMS_DECODER = json.JSONDecoder(object_pairs_hook=_unique_claims)


def check_unique_claims(token: str) -> None:
    """A repeated key in a token's header or payload is a 401 (RFC 7519 section 4: reject, or
    take the last). Parsers disagree on which of two equal keys wins, so a proxy in front of
    PIE could read one `client_id` and PIE another. Runs after the signature is verified."""
    for segment in token.split(".")[:2]:
        try:
            text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError) as exc:  # PyJWT already read it; defensive
            raise Unauthorized(f"malformed token: {exc}") from exc
        try:
            _CLAIMS_DECODER.decode(text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # as above
            raise Unauthorized(f"malformed token: {exc}") from exc


def _claim(claims: dict[str, Any], name: str, lists: bool = False, nonempty: bool = False) -> Any:
    """A string claim (None when absent or null); with `lists`, a list of strings too. Its
    text reaches SQL (tenant ids) and the logs: no NUL, no lone surrogate. With `nonempty`,
    "" is refused: an empty tenant or job would read as none (an operator's token)."""
    value = claims.get(name)
    if value is None:
        return None
    if nonempty and value == "":
        raise Unauthorized(f"invalid token: the {name!r} claim is empty")
    for item in value if lists and isinstance(value, list) else [value]:
        if not isinstance(item, str):
            kind = "a string or a list of strings" if lists else "a string"
            raise Unauthorized(f"invalid token: the {name!r} claim must be {kind}")
        if "\x00" in item or LONE_SURROGATE.search(item):
            raise Unauthorized(f"invalid token: the {name!r} claim is not valid text")
    return value


def _attempt_claim(claims: dict[str, Any]) -> int | None:
    value = claims.get(ATTEMPT_CLAIM)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= 2**31:
        raise Unauthorized(f"invalid token: the {ATTEMPT_CLAIM!r} claim must be a positive integer")
    return value


def _check_times(claims: dict[str, Any]) -> None:
    """`exp`, `iat` and `nbf` are NumericDates: JSON numbers that fit a float (PyJWT also
    takes strings of digits, True as 1, and integers too large for the cache's float)."""
    for name in ("exp", "iat", "nbf"):
        if name not in claims:
            continue
        value = claims[name]
        try:
            usable = not isinstance(value, bool) and math.isfinite(value)
        except (TypeError, OverflowError):
            usable = False
        if not usable:
            raise Unauthorized(f"invalid token: the {name!r} claim must be a number")


class TokenVerifier:
    """Verifies bearer tokens against the HS256 secret and, when configured, a JWKS URL."""

    def __init__(
        self,
        secret: str,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self.secret = secret
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """The token's principal. A verified token is remembered (bounded, and never past its
        `exp` or CACHE_SECONDS), so a client's repeated calls skip the signature check."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = self._verify(token)
        expires = min(float(principal.claims["exp"]), now + CACHE_SECONDS)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))  # the oldest entry
            self._cache[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg == "HS256":
            key: Any = self.secret
        elif alg in JWKS_ALGORITHMS and self.jwks is not None:
            try:
                signing = self.jwks.get_signing_key_from_jwt(token)
            except jwt.PyJWTError as exc:
                raise Unauthorized(f"token key not found in JWKS: {exc}") from exc
            if signing.algorithm_name != alg:
                raise Unauthorized(f"token algorithm {alg!r} does not match its JWKS key")
            key = signing.key
        else:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # e.g. an EC key for RS256
            raise Unauthorized(f"invalid token: {exc}") from exc
        check_unique_claims(token)
        _check_times(claims)
        return principal_from_claims(claims)

    def mint(self, claims: dict[str, Any], ttl_seconds: int) -> str:
        now = int(time.time())
        body = {"iat": now, "exp": now + int(ttl_seconds), **claims}
        if self.issuer and "iss" not in body:
            body["iss"] = self.issuer
        if self.audience and "aud" not in body:
            body["aud"] = self.audience
        return jwt.encode(body, self.secret, algorithm="HS256")


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthorized("missing Authorization header: expected 'Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


# RFC 7518 section 3.2: an HS256 key at least as long as the hash (32 bytes); a shorter one
# can be brute-forced offline from any token it signed.
MIN_SECRET_BYTES = 32


def check_secret(secret: str, source: str) -> None:
    """Refuse an HS256 secret shorter than MIN_SECRET_BYTES; `source` says where it came from
    (PIE_JWT_SECRET or the secret file)."""
    size = len(secret.encode("utf-8"))
    if size >= MIN_SECRET_BYTES:
        return
    where = source if source == "PIE_JWT_SECRET" else f"the token secret in {source}"
    raise ConfigurationError(
        f"{where} is {size} bytes long; an HS256 secret must be at least {MIN_SECRET_BYTES} "
        "bytes (RFC 7518 section 3.2). Make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )
