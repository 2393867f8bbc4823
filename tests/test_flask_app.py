"""PieFlask: each hook and view is asked once whether it is a coroutine function, and the
answer kept per code object, without growing per request; an async one is still wrapped;
what is not a plain function is left to Flask."""

from __future__ import annotations

import functools

from flask import Flask
from flask.views import MethodView

import pie.flask_app


def test_hooks_and_views_are_asked_once_and_the_answers_do_not_grow(app, client, monkeypatch):
    asked: list[object] = []
    original = pie.flask_app.iscoroutinefunction
    monkeypatch.setattr(
        pie.flask_app, "iscoroutinefunction", lambda func: asked.append(func) or original(func)
    )
    assert client.get("/v2/models").status_code == 200
    assert client.get("/v2/models/none").status_code == 404  # a view, an error handler
    known = len(app._is_coroutine)
    assert known > 0 and len(asked) == known  # each function asked once
    for _ in range(20):
        assert client.get("/v2/models").status_code == 200
        assert client.get("/v2/models/none").status_code == 404
    # Nothing was asked again, and the MethodViews' bound methods (new ones on every
    # request) share their answers: the answers do not grow.
    assert len(asked) == len(app._is_coroutine) == known


def test_new_methods_and_closures_of_one_definition_share_an_answer(app):
    class View(MethodView):
        def get(self) -> str:
            return "ok"

    def closure(n: int) -> object:
        def after(response: object) -> object:  # as given to after_this_request
            return n and response

        return after

    before = len(app._is_coroutine)
    one, two = View().get, View().get
    assert app.ensure_sync(one) is one and app.ensure_sync(two) is two
    for n in range(100):
        function = closure(n)
        assert app.ensure_sync(function) is function
    assert len(app._is_coroutine) == before + 2


def test_an_async_function_is_still_run_through_async_to_sync(app, monkeypatch):
    async def hook() -> None:
        return None

    wrapped: list[object] = []
    monkeypatch.setattr(app, "async_to_sync", lambda func: wrapped.append(func) or "sync")
    assert app.ensure_sync(hook) == "sync"
    assert app.ensure_sync(hook) == "sync"  # from the kept answer
    assert wrapped == [hook, hook]


def test_what_is_not_a_plain_function_is_asked_of_flask_each_time(app, monkeypatch):
    asked: list[object] = []
    original = Flask.ensure_sync
    monkeypatch.setattr(Flask, "ensure_sync", lambda self, f: asked.append(f) or original(self, f))

    def marked() -> None:  # as inspect.markcoroutinefunction (Python 3.12) marks one
        return None

    marked._is_coroutine_marker = object()  # type: ignore[attr-defined]

    class Handlers:  # a partialmethod's functions all share functools._method's code
        async def run(self, step: int) -> None:
            return None

        def stop(self, step: int) -> None:
            return None

        run_first = functools.partialmethod(run, 1)
        stop_first = functools.partialmethod(stop, 1)

    partial = functools.partial(print)
    assert app.ensure_sync(partial) is partial
    assert app.ensure_sync(marked) is marked
    assert app.ensure_sync(marked) is marked
    stop_first = Handlers.stop_first
    assert app.ensure_sync(stop_first) is stop_first
    assert asked == [partial, marked, marked, stop_first]
