"""Console tests run on the jobs world of the GET /v2/jobs tests: two models chained by a
global subscription, clients acme and beta, jobs of each kind (tests/api/test_job_search.py);
the JWKS server of the authentication tests signs identities' tokens."""

from tests.api.test_auth import jwks, jwks_client  # noqa: F401 (fixtures, by name)
from tests.api.test_job_search import app, world  # noqa: F401 (fixtures, by name)
