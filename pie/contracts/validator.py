"""The validator user schemas run on: Draft 2020-12, every keyword metered, no retrieval."""

from __future__ import annotations

from typing import Any

import attrs
import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator, validators
from referencing.jsonschema import DRAFT202012

from pie.contracts.budget import tick
from pie.contracts.keywords import REPLACED


def _metered(keyword: Any) -> Any:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        tick()
        return keyword(validator, value, instance, schema)

    return run


Validator = validators.extend(
    Draft202012Validator,
    {
        name: _metered(REPLACED.get(name, fn))
        for name, fn in Draft202012Validator.VALIDATORS.items()
    },
)
_FIELDS = [(f.name, f.alias) for f in attrs.fields(Validator) if f.init]


def _evolve(self: Any, **changes: Any) -> Any:
    """jsonschema's `evolve` without its switch to the stock validator of a `$schema` met
    inside the document, which would drop every limit above."""
    for name, alias in _FIELDS:
        changes.setdefault(alias, getattr(self, name))
    return Validator(**changes)


Validator.evolve = _evolve


def _refuse(uri: str) -> Any:
    raise referencing.exceptions.NoSuchResource(ref=uri)


# References resolve only inside the document: nothing is ever fetched or read from disk.
NO_RETRIEVAL = referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]


def document_registry(schema: Any) -> tuple[referencing.Registry, str]:
    """(a registry of the document alone, its base URI), its `$id`s and anchors found up
    front: referencing would otherwise walk the document again on each lookup of one."""
    root = DRAFT202012.create_resource(schema)
    uri = root.id() or ""
    return NO_RETRIEVAL.with_resource(uri, root).crawl(), uri


def validator_for(schema: Any) -> Any:
    return Validator(schema, registry=document_registry(schema)[0])
