"""Token scopes: what each permission in a machine token's `scope` claim grants (no imports,
so `pie token --help` can list them without loading the app)."""

from __future__ import annotations

SCOPE_PREFIX = "streamline/"
ADMIN_SCOPE = "streamline/admin"

# Permission name (the scope without its prefix) -> what it grants (the contract, section 2).
GRANTS = {
    "read_models": "read models, versions, subscriptions, jobs",
    "manage_models": "create/update/delete models and versions, set version status, "
    "manage event subscriptions",
    "run_inference": "direct inference; assignment jobs with job_type inference",
    "run_training": "direct training; assignment jobs with job_type training",
    "complete_jobs": "the job completion callback",
    "read_domains": "read clients, domains, features, services, assignments",
    "manage_domains": "create/update domains, features, assignments",
    "init_services": "initialise / update / re-initialise services",
    "manage_webhooks": "create, change, delete and test webhook endpoints, read their "
    "delivery logs and redeliver (a tenant's token: its own client's endpoints only)",
    "admin": "everything, every tenant, client management",
}
PERMISSIONS = frozenset(GRANTS)


def scope_name(value: str) -> str:
    """`read_models` or `streamline/read_models` -> `streamline/read_models`; ValueError for a
    scope PIE does not know."""
    permission = value.removeprefix(SCOPE_PREFIX)
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown scope {value!r}; valid scopes: {', '.join(GRANTS)}")
    return SCOPE_PREFIX + permission
