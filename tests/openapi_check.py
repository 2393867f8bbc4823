"""Every request and response the tests' Client sends and gets is checked against the app's
own /openapi.json with openapi-core (issue 18): a response the document does not describe
fails the test that got it, and so does a request the server accepted that the document
forbids. A request the server refused (4xx) is not checked: tests send those on purpose.

PIE_CHECK_OPENAPI=0 turns the check off (to time the suite without it)."""

from __future__ import annotations

import collections
import json
import os
import weakref
from typing import Any

from flask import Flask
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.request.exceptions import SecurityValidationError

ENABLED = os.environ.get("PIE_CHECK_OPENAPI", "1") != "0"

# Each app's document, and one OpenAPI object per distinct document (apps with the same
# plugins serve the same document; building the object is the expensive part).
_DOCUMENTS: weakref.WeakKeyDictionary[Flask, str] = weakref.WeakKeyDictionary()
_OPENAPI: dict[str, OpenAPI] = {}
# The response headers the document describes (the rest, such as X-Request-Id, vary).
DOCUMENTED_HEADERS = ("Content-Type", "X-Pagination", "Link")
# Exchanges already found to match, byte for byte: tests that poll (wait_for_job) repeat them.
_MATCHED: set[tuple] = set()


class SentRequest(WerkzeugOpenAPIRequest):
    """The request as the test client sent it: the app has read the body from the
    environ's input stream, so read it again from the start."""

    @property
    def body(self) -> bytes | None:
        stream = self.request.environ.get("wsgi.input")
        if stream is None or not stream.seekable():
            return None
        stream.seek(0)
        return stream.read()


# Apps with the same version and handler types serve the same document, so it is built once
# per such signature (an app documents its routes only when asked, pie.api.Api, and that is
# most of an app's start); every SAMPLE-th app of a signature still builds its own, which must
# be the same: a signature that missed an input of the document fails there.
_BY_SIGNATURE: dict[tuple, str] = {}
_APPS_OF: collections.Counter[tuple] = collections.Counter()
SAMPLE = 20


def signature(app: Flask) -> tuple:
    types = app.extensions["pie"].handler_types
    return (
        app.config.get("PIE_VERSION"),
        tuple(
            sorted((name, type(t).__module__, type(t).__qualname__) for name, t in types.items())
        ),
    )


def document_text(app: Flask) -> str:
    (api,) = (entry["ext_obj"] for entry in app.extensions["flask-smorest"]["apis"].values())
    return json.dumps(api.document(), sort_keys=True)


def openapi_of(app: Flask) -> OpenAPI:
    text = _DOCUMENTS.get(app)
    if text is None:
        key = signature(app)
        _APPS_OF[key] += 1
        known = _BY_SIGNATURE.get(key)
        if known is None or _APPS_OF[key] % SAMPLE == 0:
            text = document_text(app)
            assert known is None or text == known, f"two documents for one signature {key}"
            _BY_SIGNATURE[key] = text
        text = _DOCUMENTS[app] = _BY_SIGNATURE[key]
    openapi = _OPENAPI.get(text)
    if openapi is None:
        openapi = _OPENAPI[text] = OpenAPI.from_dict(json.loads(text))
    return openapi


def check_exchange(app: Flask, response: Any) -> None:
    """Raise AssertionError when `response` (a werkzeug TestResponse, which keeps its
    request) or its accepted request does not match the app's document."""
    if not ENABLED or response.request is None:
        return
    openapi = openapi_of(app)
    request = SentRequest(response.request)
    key = exchange_key(openapi, request, response)
    if key in _MATCHED:
        return
    try:
        openapi.validate_response(request, WerkzeugOpenAPIResponse(response))
        if response.status_code < 400:
            openapi.validate_request(request)
    except (PathNotFound, OperationNotFound):
        return  # not an API route: /docs, /metrics, a 404 or 405 for a path PIE lacks
    except SecurityValidationError:
        return  # the document's bearerAuth: a request without a token is refused anyway
    except Exception as exc:
        detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", ()) or ())
        raise AssertionError(
            f"{request.method.upper()} {request.path} → {response.status_code} does not match "
            f"/openapi.json: {exc!r} {detail}\nbody: {response.get_data(as_text=True)[:2000]}"
        ) from exc
    if len(_MATCHED) > 100_000:
        _MATCHED.clear()
    _MATCHED.add(key)


def exchange_key(openapi: OpenAPI, request: SentRequest, response: Any) -> tuple:
    """What the check reads of one exchange (the token aside: only its presence counts)."""
    sent = request.request
    return (
        id(openapi),
        sent.method,
        sent.full_path,
        sent.content_type,
        "Authorization" in sent.headers,
        request.body if response.status_code < 400 else None,
        response.status_code,
        tuple(response.headers.get(name) for name in DOCUMENTED_HEADERS),
        response.get_data(),
    )
