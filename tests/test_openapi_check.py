"""The openapi-core check every test's exchanges go through (tests/openapi_check.py) fails
when a response or an accepted request does not match the document."""

from __future__ import annotations

import json

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
from openapi_core.validation.response.exceptions import InvalidHeader

from tests import openapi_check
from tests.helpers import ADMIN, model_body

pytestmark = pytest.mark.skipif(not openapi_check.ENABLED, reason="PIE_CHECK_OPENAPI=0")


def test_a_response_the_document_does_not_describe_fails(app):
    response = app.test_client().get("/v2/health")
    openapi_check.check_exchange(app, response)  # as served: fine
    response.set_data(json.dumps({"status": "fine", "database": "ok", "version": "2"}))
    with pytest.raises(AssertionError, match="does not match /openapi.json"):
        openapi_check.check_exchange(app, response)


def test_an_accepted_request_the_document_forbids_fails(app):
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = app.test_client().post("/v2/models", json=model_body(), headers=headers)
    assert response.status_code == 201
    openapi_check.check_exchange(app, response)
    response.request.environ["wsgi.input"].seek(0)
    response.request.environ["wsgi.input"].write(b'{"name": 7}')
    response.request.environ["wsgi.input"].truncate()
    with pytest.raises(AssertionError, match="does not match /openapi.json"):
        openapi_check.check_exchange(app, response)


def test_the_request_body_is_read_again_from_the_start(app):
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = app.test_client().post("/v2/models", json=model_body(), headers=headers)
    body = openapi_check.SentRequest(response.request).body
    assert json.loads(body) == model_body()


def test_x_pagination_declared_with_schema_would_reject_every_page(client):
    """Why the document declares X-Pagination as JSON content (issue 18, item 2)."""
    client.post("/v2/models", json=model_body())
    response = client.get("/v2/models")
    assert json.loads(response.headers["X-Pagination"])["total"] == 1
    document = client.get("/openapi.json").get_json()
    header = document["components"]["headers"]["PAGINATION"]
    header["schema"] = header.pop("content")["application/json"]["schema"]
    old = OpenAPI.from_dict(document)
    with pytest.raises(InvalidHeader):
        old.validate_response(
            openapi_check.SentRequest(response.request), WerkzeugOpenAPIResponse(response)
        )
