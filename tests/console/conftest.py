"""Console tests run on the jobs world of the GET /v2/jobs tests: two models chained by a
global subscription, clients acme and beta, jobs of each kind (tests/api/test_job_search.py)."""

from tests.api.test_job_search import app, world  # noqa: F401 (fixtures, by name)
