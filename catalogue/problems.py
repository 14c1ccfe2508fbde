"""Problems found in the catalogue, each one line a person can act on.

Pydantic's errors are translated here into "field 'x': expected ... (got ...)". A field path
names list items by their ``name`` when they have one (``applications[Coot].command``) and by
their position from 0 otherwise (``protocols[1]``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True)
class CatalogueProblem:
    """One problem: the file, the entry and field (None when not about one), what to do."""

    path: Path
    entry: str | None
    field: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        """Return "<path>: [line N: ][field 'f': ]<message>"."""
        line = f"line {self.line}: " if self.line is not None else ""
        field = f"field '{self.field}': " if self.field else ""
        return f"{self.path}: {line}{field}{self.message}"


_INHERIT_HINT = " (or inherit it: 'extends: <parent>')"
_EXPECTED = {
    "string_type": "expected text",
    "string_too_short": "expected non-empty text",
    "int_type": "expected a whole number",
    "bool_type": "expected true or false",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "model_type": "expected a mapping of 'key: value' lines",
    "dict_type": "expected a mapping of 'key: value' lines",
    "invalid_key": "expected a text key",
}


def field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Return the readable path of ``loc`` in ``data`` (the raw mapping that was validated)."""
    parts: list[str] = []
    for key in loc:
        item = data[key] if isinstance(data, list | tuple) and isinstance(key, int) else None
        if isinstance(key, int):
            label = item.get("name") if isinstance(item, dict) else None
            parts.append(f"[{label}]" if isinstance(label, str) else f"[{key}]")
            data = item
        else:
            parts.append(f".{key}" if parts else str(key))
            data = data.get(key) if isinstance(data, dict) else None
    return "".join(parts)


def describe(error: ErrorDetails, model: type[BaseModel]) -> str:
    """Return what was expected for one pydantic error, with the value that was found."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        in_list = any(isinstance(key, int) for key in error["loc"])
        return "required field is missing; add it" + ("" if in_list else _INHERIT_HINT)
    if kind == "extra_forbidden":
        return _unknown_field(error["loc"], model)
    if kind == "literal_error":
        message = "expected one of " + str(ctx["expected"]).replace("'", "").replace(" or ", ", ")
    elif kind == "greater_than":
        message = f"expected a number greater than {ctx['gt']}"
    elif kind == "too_short":
        message = f"expected at least {ctx['min_length']} item(s)"
    elif kind == "value_error":
        message = str(ctx.get("error") or error["msg"])
    else:
        message = _EXPECTED.get(kind, error["msg"])
    return f"{message} (got {_short(error['input'])})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_field(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    known = list(_model_at(model, loc[:-1]).model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown field; expected one of: {', '.join(known)}{hint}"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel]:
    for key in loc:
        if isinstance(key, str):
            model = _nested_model(model.model_fields[key].annotation)
    return model


def _nested_model(annotation: Any) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    raise LookupError(f"no model in {annotation!r}")  # pragma: no cover - schema bug


def from_validation_error(
    error: ValidationError,
    data: Any,
    model: type[BaseModel],
    keep: Callable[[ErrorDetails], bool] = lambda error: True,
) -> list[tuple[str, str]]:
    """Return (field path, message) for each error that ``keep`` accepts (default: all).

    A list that is "too short" only because its items are invalid is not reported twice.
    """
    errors = error.errors()
    item_lists = {e["loc"][:-1] for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    return [
        (field_path(e["loc"], data), describe(e, model))
        for e in errors
        if keep(e) and not (e["type"] == "too_short" and e["loc"] in item_lists)
    ]
