"""The validator user schemas run on: Draft 2020-12, every keyword metered, no retrieval."""

from __future__ import annotations

from typing import Any

import attrs
import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing.jsonschema import DRAFT202012

from pie.contracts.applicators import APPLICATORS
from pie.contracts.budget import tick
from pie.contracts.keywords import VALUE_KEYWORDS
from pie.contracts.quote import quote
from pie.contracts.unevaluated import UNEVALUATED

REPLACED = {**VALUE_KEYWORDS, **APPLICATORS, **UNEVALUATED}


def _metered(keyword: Any) -> Any:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        # Some keywords go through every item of an array or object: count them, so that the
        # clock is read before a long one, not only every CLOCK_EVERY keywords.
        tick(len(instance) + 1 if isinstance(instance, list | dict) else 1)
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
_iter_errors, _descend = Validator.iter_errors, Validator.descend


def _evolve(self: Any, **changes: Any) -> Any:
    """jsonschema's `evolve` without its switch to the stock validator of a `$schema` met
    inside the document, which would drop every limit above."""
    for name, alias in _FIELDS:
        changes.setdefault(alias, getattr(self, name))
    return Validator(**changes)


def _refused(instance: Any) -> Any:
    """jsonschema's error for the `false` schema, quoting a bounded part of the value."""
    error = ValidationError(
        f"False schema does not allow {quote(instance)}",
        validator=None,
        validator_value=None,
        instance=instance,
        schema=False,
    )
    return iter([error])


def _iter_errors_of(self: Any, instance: Any, _schema: Any = None) -> Any:
    if (self.schema if _schema is None else _schema) is False:
        return _refused(instance)
    if _schema is None:
        return _iter_errors(self, instance)
    return _iter_errors(self, instance, _schema)  # jsonschema's deprecated form


def _descend_into(self: Any, instance: Any, schema: Any, *args: Any, **kwargs: Any) -> Any:
    if schema is False:
        return _refused(instance)
    return _descend(self, instance, schema, *args, **kwargs)


Validator.evolve = _evolve
Validator.iter_errors = _iter_errors_of
Validator.descend = _descend_into


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
