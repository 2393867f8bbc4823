"""Tenant access and operation permissions of pie.auth.Principal (contract section 2)."""

import pytest

from pie.auth import Principal, principal_from_claims, require
from pie.errors import Forbidden
from pie.scopes import PERMISSIONS

TENANT_PERMISSIONS = {"read_domains", "manage_domains", "init_services"}
HUMAN_ON_OWN_TENANT = TENANT_PERMISSIONS | {"run_inference", "run_training"}


def principal(**claims) -> Principal:
    return principal_from_claims({"sub": "t", **claims})


@pytest.mark.parametrize(
    "claims",
    [{"scope": "streamline/admin"}, {"cognito:groups": ["admin"]}],
    ids=["admin-scope", "admin-group"],
)
def test_admin_has_everything_everywhere(claims):
    p = principal(**claims)
    assert p.is_admin
    for permission in PERMISSIONS:
        assert p.has(permission)
        assert p.has(permission, "any-client")
    assert p.can_access("acme") and p.can_access("globex")
    assert p.accessible_clients() is None


def test_admin_scope_needs_the_exact_name():
    for scope in ["admin", "streamline/admins", "other/admin"]:
        p = principal(scope=scope)
        assert not p.is_admin
        assert not p.has("manage_models")
        assert not p.can_access("acme")


def test_machine_token_accesses_only_its_own_client():
    p = principal(scope="streamline/read_domains", client_id="acme")
    assert p.can_access("acme")
    assert not p.can_access("globex")
    assert p.accessible_clients() == frozenset({"acme"})
    assert p.has("read_domains", "acme")
    assert not p.has("manage_domains", "acme")  # access to the tenant is not a permission
    assert not p.has("read_models")


def test_machine_permissions_come_from_scopes_only():
    p = principal(scope="streamline/read_models streamline/manage_models")
    assert p.has("read_models") and p.has("manage_models")
    assert not p.has("run_inference") and not p.has("admin")
    assert not p.can_access("acme")
    assert p.accessible_clients() == frozenset()


def test_scope_claim_may_be_a_list():
    p = principal(scope=["streamline/read_models", "streamline/run_training"])
    assert p.has("read_models") and p.has("run_training")


def test_human_client_group():
    p = principal(**{"cognito:groups": ["client:acme"]})
    assert p.can_access("acme")
    assert not p.can_access("globex")
    assert p.accessible_clients() == frozenset({"acme"})
    assert p.has("read_models")  # global, not tied to the tenant
    for permission in HUMAN_ON_OWN_TENANT:
        assert p.has(permission, "acme"), permission
        assert not p.has(permission, "globex"), permission
        # Off any tenant only listing (GET /v2/clients, filtered to acme) is allowed.
        assert p.has(permission) == (permission == "read_domains"), permission
    for permission in ["manage_models", "complete_jobs", "admin"]:
        assert not p.has(permission, "acme"), permission


def test_human_with_several_client_groups():
    p = principal(**{"cognito:groups": ["client:acme", "client:globex", "readers"]})
    assert p.can_access("acme") and p.can_access("globex")
    assert not p.can_access("readers") and not p.can_access("initech")
    assert p.accessible_clients() == frozenset({"acme", "globex"})


def test_unrelated_groups_grant_nothing():
    p = principal(**{"cognito:groups": ["readers", "client-acme", "admins"]})
    assert not p.is_admin
    assert not any(p.has(permission) for permission in PERMISSIONS)
    assert not p.can_access("acme")


def test_callback_token_has_no_general_permission():
    for claims in [
        {"pie:job_id": "job-1"},
        {"pie:job_id": "job-1", "scope": "streamline/complete_jobs"},
        {"pie:job_id": "job-1", "scope": "streamline/admin", "client_id": "acme"},
        {"pie:job_id": "job-1", "cognito:groups": ["admin", "client:acme"]},
    ]:
        p = principal(**claims)
        assert p.job_id == "job-1"
        for permission in PERMISSIONS:
            assert not p.has(permission), (claims, permission)
            assert not p.has(permission, "acme"), (claims, permission)
        assert not p.can_access("acme"), claims


def test_require_checks_permission_then_tenant():
    machine = principal(scope="streamline/read_domains", client_id="acme")
    require(machine, "read_domains", "acme")
    with pytest.raises(Forbidden, match="manage_domains"):
        require(machine, "manage_domains", "acme")
    with pytest.raises(Forbidden, match="globex"):
        require(machine, "read_domains", "globex")
    require(principal(scope="streamline/read_models"), "read_models")
    with pytest.raises(Forbidden):
        require(principal(scope="streamline/read_models"), "manage_models")
