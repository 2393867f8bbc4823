"""PieFlask: each hook and view is asked once whether it is a coroutine function, and the
answer kept per function, without growing per request; an async one is still wrapped."""

from __future__ import annotations

import pytest
from flask.views import MethodView

import pie.flask_app


def test_hooks_and_views_are_asked_once_and_the_answers_do_not_grow(app, client):
    asked: list[object] = []
    original = pie.flask_app.iscoroutinefunction

    def counting(func: object) -> bool:
        asked.append(func)
        return original(func)

    pie.flask_app.iscoroutinefunction = counting
    try:
        assert client.get("/v2/models").status_code == 200
        assert client.get("/v2/models/none").status_code == 404  # a view, an error handler
        known = len(app._is_coroutine)
        assert known > 0 and len(asked) == known  # each function asked once
        for _ in range(20):
            assert client.get("/v2/models").status_code == 200
            assert client.get("/v2/models/none").status_code == 404
        # Nothing was asked again, and the MethodViews' bound methods (new ones on every
        # request) are kept by their functions: the answers do not grow.
        assert len(asked) == len(app._is_coroutine) == known
    finally:
        pie.flask_app.iscoroutinefunction = original


def test_a_method_views_handler_is_kept_by_its_function(app):
    class View(MethodView):
        def get(self) -> str:
            return "ok"

    one, two = View().get, View().get
    assert app.ensure_sync(one) is one and app.ensure_sync(two) is two
    assert list(app._is_coroutine).count(View.get) == 1


def test_an_async_function_is_still_run_through_async_to_sync(app, monkeypatch):
    async def hook() -> None:
        return None

    wrapped: list[object] = []
    monkeypatch.setattr(app, "async_to_sync", lambda func: wrapped.append(func) or "sync")
    assert app.ensure_sync(hook) == "sync"
    assert app.ensure_sync(hook) == "sync"  # from the kept answer
    assert wrapped == [hook, hook]


@pytest.mark.parametrize(
    "make", [lambda: lambda: None, lambda: __import__("functools").partial(print)]
)
def test_other_callables_are_answered_as_flask_does(app, make):
    func = make()
    assert app.ensure_sync(func) is func
