"""Which client method serves each operation of PIE's OpenAPI document, by (method, path) —
not by operationId — with the record its answer is built as (None: no body, or a list of
FeatureDefinition for the one unpaged list). tests/client/test_coverage.py walks the served
document against this table."""

from __future__ import annotations

from pie_client import types as t
from pie_client.records import Record

M = "/v2/models/{model_id}"
V = M + "/versions/{model_version}"
S = M + "/event-subscriptions"
C = "/v2/clients/{client_id}"
D = C + "/domains/{domain_id}"
SV = D + "/service/{service_id}"

# (HTTP method, path) -> (attribute of Client, or "" for Client itself; method; result record)
OPERATIONS: dict[tuple[str, str], tuple[str, str, type[Record] | None]] = {
    ("GET", "/v2/health"): ("", "health", t.Health),
    ("GET", "/v2/models"): ("models", "list", t.Model),
    ("POST", "/v2/models"): ("models", "create", t.Model),
    ("GET", M): ("models", "get", t.Model),
    ("PUT", M): ("models", "update", t.Model),
    ("DELETE", M): ("models", "delete", None),
    ("PUT", M + "/job_policy"): ("models", "set_job_policy", t.Model),
    ("POST", M + "/new_version"): ("versions", "create", t.NewVersionResult),
    ("GET", M + "/versions"): ("versions", "list", t.ModelVersion),
    ("GET", V): ("versions", "get", t.ModelVersion),
    ("POST", V + "/new_status"): ("versions", "set_status", t.TransitionResult),
    ("POST", V + "/inference"): ("jobs", "infer", t.InferenceStarted),
    ("POST", V + "/training"): ("jobs", "train", t.TrainingStarted),
    ("GET", "/v2/jobs/{job_id}"): ("jobs", "get", t.Job),
    ("GET", "/v2/jobs"): ("jobs", "list", t.Job),
    ("GET", V + "/jobs"): ("jobs", "list_for_version", t.Job),
    ("POST", V + "/jobs/{job_id}/complete"): ("jobs", "complete", t.CompletionResult),
    ("POST", V + "/jobs/{job_id}/heartbeat"): ("jobs", "heartbeat", t.HeartbeatResult),
    ("POST", "/v2/jobs/{job_id}/cancel"): ("jobs", "cancel", t.Job),
    ("GET", S): ("subscriptions", "list", t.Subscription),
    ("POST", S): ("subscriptions", "create", t.Subscription),
    ("GET", S + "/{subscription_id}"): ("subscriptions", "get", t.Subscription),
    ("PUT", S + "/{subscription_id}"): ("subscriptions", "update", t.Subscription),
    ("DELETE", S + "/{subscription_id}"): ("subscriptions", "delete", None),
    ("GET", "/v2/clients"): ("clients", "list", t.Tenant),
    ("POST", "/v2/clients"): ("clients", "create", t.Tenant),
    ("GET", C): ("clients", "get", t.Tenant),
    ("PUT", C): ("clients", "update", t.Tenant),
    ("GET", C + "/domains"): ("domains", "list", t.Domain),
    ("POST", C + "/domains"): ("domains", "create", t.Domain),
    ("GET", D): ("domains", "get", t.Domain),
    ("PUT", D): ("domains", "update", t.Domain),
    ("GET", D + "/features"): ("features", "list", t.FeatureDefinition),
    ("PUT", D + "/features"): ("features", "replace", t.FeaturesReport),
    ("POST", D + "/service/init"): ("services", "init", t.ServiceInitResult),
    ("GET", D + "/services"): ("services", "list", t.Service),
    ("POST", D + "/services/init"): ("services", "reinit_all", t.ReinitResult),
    ("GET", SV): ("services", "get", t.Service),
    ("PUT", SV): ("services", "update", t.Service),
    ("DELETE", SV): ("services", "delete", None),
}

W = "/v2/webhooks/{webhook_id}"
OPERATIONS.update(
    {
        ("GET", "/v2/webhooks"): ("webhooks", "list", t.Webhook),
        ("POST", "/v2/webhooks"): ("webhooks", "create", t.Webhook),
        ("GET", W): ("webhooks", "get", t.Webhook),
        ("PUT", W): ("webhooks", "update", t.Webhook),
        ("DELETE", W): ("webhooks", "delete", None),
        ("POST", W + "/rotate-secret"): ("webhooks", "rotate_secret", t.Webhook),
        ("POST", W + "/test"): ("webhooks", "test", t.Delivery),
        ("GET", W + "/deliveries"): ("webhooks", "deliveries", t.Delivery),
        ("GET", W + "/deliveries/{delivery_id}"): ("webhooks", "delivery", t.Delivery),
        ("POST", W + "/deliveries/{delivery_id}/redeliver"): ("webhooks", "redeliver", t.Delivery),
    }
)

# The assignment routes exist in two scopes, the domain's and one service's: one method each.
for _scope in (D, SV):
    _a = _scope + "/assignments"
    OPERATIONS.update(
        {
            ("GET", _a): ("assignments", "list", t.Assignment),
            ("POST", _a): ("assignments", "create", t.Assignment),
            ("GET", _a + "/{assignment_key}"): ("assignments", "get", t.Assignment),
            ("PUT", _a + "/{assignment_key}"): ("assignments", "put", t.Assignment),
            ("GET", _a + "/{assignment_key}/revisions"): ("assignments", "revisions", t.Assignment),
            ("POST", _a + "/{assignment_key}/jobs"): ("assignments", "run_job", t.JobStarted),
        }
    )
