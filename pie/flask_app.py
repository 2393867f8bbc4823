"""PIE's Flask class."""

from __future__ import annotations

from inspect import iscoroutinefunction
from types import FunctionType, MethodType
from typing import Any

from flask import Flask

# Attributes of a function that inspect.iscoroutinefunction also consults, beside its code:
# inspect.markcoroutinefunction's mark (3.12) and a partialmethod's (3.13; before, named
# _partialmethod and not consulted), whose functions all share functools._method's code.
MARKS = frozenset({"_is_coroutine_marker", "__partialmethod__", "_partialmethod"})


class PieFlask(Flask):
    """Flask, less asking a dozen times per request whether each hook, error handler and
    view is a coroutine function: the answer is kept. An `async def` one is still run
    through `async_to_sync`, as by Flask."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_coroutine: dict[Any, bool] = {}

    def ensure_sync(self, func: Any) -> Any:
        # For a plain function (or a method of one) the answer is its code object's flag
        # (inspect._has_code_flag), so it is kept per code object: a MethodView's handler
        # is a new bound method on every request and a closure given to after_this_request
        # a new function, but they share their code. Anything else (a partial, a callable
        # object, a function with one of MARKS) is asked each time.
        function = func.__func__ if type(func) is MethodType else func
        if type(function) is not FunctionType or not MARKS.isdisjoint(function.__dict__):
            return super().ensure_sync(func)
        code = function.__code__
        try:
            coroutine = self._is_coroutine[code]
        except KeyError:
            coroutine = self._is_coroutine[code] = iscoroutinefunction(function)
        return self.async_to_sync(func) if coroutine else func
