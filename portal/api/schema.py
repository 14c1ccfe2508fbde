"""Pydantic models as the API's bodies and as the OpenAPI document's components.

A request body is a :class:`Body`, read with :func:`parse_body` (a 400 naming the field when
it does not fit); a response body is a :class:`Reply`, written with :func:`dump`. The document's
``components/schemas`` are these same models' JSON schemas (:func:`components`), and the
path items refer to them with :func:`content` and :func:`request_body`: nothing is described
twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WithJsonSchema
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import BaseConverter

from daaas.portal.errors import InvalidInput

REF = "#/components/schemas/{model}"
M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q", bound="Query")
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
#: A time kept as an aware datetime (a page formats it as it likes) and written as
#: :data:`Timestamp` is (``datetime.isoformat()``), with the same JSON schema.
Instant = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str),
                    WithJsonSchema({"type": "string", "format": "date-time"})]
#: A day as YYYY-MM-DD (bounded, for the API's fuzz test).
Day = Annotated[date, Field(json_schema_extra={"maxLength": 10})]
"""An ISO 8601 time as the portal writes it (``datetime.isoformat()``, with its UTC offset)."""


class Body(BaseModel):
    """A request body: JSON types as sent (no "12" for 12), unknown fields ignored.

    Give ``model_config`` an ``examples`` entry: the 400 answer quotes the first one.
    """

    model_config = ConfigDict(strict=True, frozen=True)


class Reply(BaseModel):
    """A response body: every field the portal sends is declared, nothing else is allowed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def parse_body(model: type[M], *, empty_means: dict[str, Any] | None = None) -> M:
    """Return the request's JSON body as ``model``.

    ``empty_means`` is what an empty body stands for (None: an empty body is refused). Raises
    InvalidInput when the body is not JSON, not a JSON object, or does not fit the model; the
    message names each failing field ("name: field required") and quotes the model's example.
    """
    raw = request.get_data(cache=True)
    if not raw.strip() and empty_means is not None:
        return model.model_validate(empty_means, strict=False)
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidInput(f"The body is not JSON. {_example(model)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"The body must be a JSON object. {_example(model)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{field_errors(exc)}. {_example(model)}") from None


class Query(BaseModel):
    """A route's query parameters: each is text in the URL, converted to its field's type
    ("12" is 12 here) and checked against its bounds; parameters not declared are ignored.

    Every field needs a bound (``le``/``max_length``): the fuzz test sends numbers and text of
    any size. The document's parameters are these fields (:func:`query_parameters`).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")


#: Largest id or count the API takes (PostgreSQL's INTEGER; SQLite overflows past 2**63 - 1).
MAX_ID = 2**31 - 1
#: The converter of an id in a route (``f"/jobs/<{ID}:job_id>"``, see :class:`IdConverter`).
ID = "id"
#: The OpenAPI schema of such an id.
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


class IdConverter(BaseConverter):
    """A numeric id in a route that never overflows a database integer.

    Up to 18 ASCII digits match (more: no route, 404); a value past :data:`MAX_ID` becomes
    0, which no row has (ids start at 1), so the view answers its own 404 and the database
    never sees a number its INTEGER columns cannot compare with (PostgreSQL: "integer out of
    range"). Werkzeug's ``int(max=...)`` would refuse it while matching, which it reports as
    405 for some methods.
    """

    regex = r"[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        """Return the id, or 0 for one past :data:`MAX_ID`."""
        number = int(value)
        return number if number <= MAX_ID else 0

    def to_url(self, value: Any) -> str:
        """Return the id as written in a URL."""
        return str(int(value))


def with_ids(blueprint: Blueprint) -> Blueprint:
    """Return ``blueprint`` with the ``id`` route converter (:class:`IdConverter`) added to
    the app it is registered on, before its own routes."""
    def add(state: BlueprintSetupState) -> None:
        state.app.url_map.converters.setdefault(ID, IdConverter)

    blueprint.record_once(add)
    return blueprint


def parse_query(model: type[Q]) -> Q:
    """Return the request's query parameters as ``model`` (a :class:`Query`).

    Raises InvalidInput naming each parameter that does not fit ("offset: input should be less
    than or equal to 2147483647"); a parameter given twice counts by its first value.
    """
    data = {name: request.args[name] for name in model.model_fields if name in request.args}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{field_errors(exc)}.") from None


def query_parameters(model: type[Query]) -> list[dict[str, Any]]:
    """Return OpenAPI parameter objects (``in: query``) for the fields of ``model``, with their
    JSON schemas (types, bounds, defaults) and descriptions."""
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    parameters: list[dict[str, Any]] = []
    for name, field in schema["properties"].items():
        spec = {key: value for key, value in field.items() if key not in {"title", "description"}}
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "schema": spec}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters


def field_errors(exc: ValidationError) -> str:
    """Return pydantic's errors as one line, each led by its field: "flavor: input should ..."."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        line = f"{where}: {message[:1].lower()}{message[1:]}"
        if line not in lines:
            lines.append(line)
    return "; ".join(lines)


def _example(model: type[BaseModel]) -> str:
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(examples, list) or not examples:
        return f"Send a JSON object matching {model.__name__} in /api/v1/openapi.json."
    return f"Send JSON like {json.dumps(examples[0])}."


def dump(model: BaseModel) -> dict[str, Any]:
    """Return a reply as JSON-ready data (by alias; fields never set are left out)."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def components(requests: Iterable[type[BaseModel]],
               replies: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """Return the JSON schemas of the models and of every model they use, by model name.

    Requests are described as they are validated, replies as they are written. Raises
    ValueError when two different models would share a name (the document could not tell
    them apart).
    """
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "validation") for model in requests),
        *((model, "serialization") for model in replies)]
    _, top = models_json_schema(pairs, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    unnamed = sorted(name for name in schemas if not name.isidentifier())
    if unnamed:
        raise ValueError(f"API models with clashing names: {', '.join(unnamed)}; rename one")
    return schemas


def ref(model: type[BaseModel]) -> dict[str, str]:
    """Return a JSON reference to ``model``'s schema among the document's components."""
    return {"$ref": REF.format(model=model.__name__)}


def content(model: type[BaseModel], description: str) -> dict[str, Any]:
    """Return an OpenAPI response object whose JSON body is ``model``."""
    return {"description": description, "content": {"application/json": {"schema": ref(model)}}}


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """Return an OpenAPI request body object whose JSON is ``model``."""
    return {"required": required, "content": {"application/json": {"schema": ref(model)}}}


ERROR_TEXT = {400: "Invalid input; the message names the field", 401: "Not signed in",
              403: "Not allowed", 404: "Not found", 409: "Conflicts with the current state",
              422: "Cannot be done as asked", 502: "The cluster refused the request",
              503: "A service the portal needs is not configured or not reachable"}


class ErrorDetail(Reply):
    """What went wrong, for a person to act on."""

    code: str
    message: str


class Error(Reply):
    """Every error's body, whatever the status (written by :mod:`daaas.portal.lifecycle`)."""

    error: ErrorDetail


def errors(*codes: int, **descriptions: str) -> dict[str, Any]:
    """Return OpenAPI error responses, each with an :class:`Error` body.

    Each of ``codes`` gets a standard description; ``descriptions`` (``_403="..."``) gives one
    code its own.
    """
    return {str(code): content(Error, descriptions.get(f"_{code}", ERROR_TEXT[code]))
            for code in codes}
