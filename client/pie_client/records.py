"""The base of the typed results: dataclasses built from the server's JSON, keeping any field
this client does not know yet in `extra` rather than dropping it."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


@dataclasses.dataclass(kw_only=True)
class Record:
    # Fields holding one record, or a list of records, and the type to build them as.
    NESTED: ClassVar[dict[str, type[Record]]] = {}
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        names = set(cls.field_names())
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in names:
                known[key] = cls._nested(key, value)
            else:
                extra[key] = value
        return cls(**known, extra=extra)

    @classmethod
    def _nested(cls, key: str, value: Any) -> Any:
        record = cls.NESTED.get(key)
        if record is None or value is None:
            return value
        if isinstance(value, list):
            return [record.from_dict(item) for item in value]
        return record.from_dict(value)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the server sent (unknown fields included)."""
        out = {name: plain(getattr(self, name)) for name in self.field_names()}
        return {**out, **self.extra}


def plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
