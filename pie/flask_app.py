"""PIE's Flask class."""

from __future__ import annotations

from inspect import iscoroutinefunction
from types import FunctionType, MethodType
from typing import Any

from flask import Flask


class PieFlask(Flask):
    """Flask, less asking a dozen times per request whether each hook and view is a
    coroutine function: the answer is kept per function. An `async def` hook or view is
    still run through `async_to_sync`, as by Flask."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_coroutine: dict[Any, bool] = {}

    def ensure_sync(self, func: Any) -> Any:
        # A MethodView's handler is a new bound method on every request: its function is
        # the key. Other callables (partials, callable objects) are asked each time.
        key = func.__func__ if type(func) is MethodType else func
        if type(key) is not FunctionType:
            return super().ensure_sync(func)
        try:
            coroutine = self._is_coroutine[key]
        except KeyError:
            coroutine = self._is_coroutine[key] = iscoroutinefunction(key)
        return self.async_to_sync(func) if coroutine else func
