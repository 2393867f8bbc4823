"""What one PIE app holds at run time: settings, plugins, handler types, token verifier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from pie.auth import TokenVerifier
from pie.handler_types import HandlerType


class Runtime:
    """Per-app state that services use; views find it at `app.extensions["pie"]`."""

    def __init__(
        self, config: dict[str, Any], pm: pluggy.PluginManager, verifier: TokenVerifier
    ) -> None:
        self.config = config
        self.pm = pm
        self.verifier = verifier
        self.handler_types: dict[str, HandlerType] = {}
        self.in_process_handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def install(
        self,
        handler_types: dict[str, type[HandlerType]],
        in_process: dict[str, Callable[[dict[str, Any]], Any]],
    ) -> None:
        self.in_process_handlers = in_process
        self.handler_types = {name: cls(self) for name, cls in handler_types.items()}

    def handler_type(self, name: str) -> HandlerType:
        return self.handler_types[name]

    def close(self) -> None:
        for handler_type in self.handler_types.values():
            handler_type.close()
