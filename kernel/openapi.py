"""OpenAPI pieces every module's routes share: error responses documented with the one error body, and
ways to document what a handler reads where Litestar cannot infer it (bodies the handler decodes itself
so that the domain, not the framework, judges each field).

The served document is a contract that a test fuzzes (tests/e2e/test_openapi_conformance.py): every
status code a route can answer is listed, errors with the one ``ErrorBody`` (kernel.http.errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from litestar.enums import ParamType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema

from kernel.http.errors import ErrorBody


def errors(codes: Mapping[int, str]) -> dict[int, ResponseSpec]:
    """``responses=`` entries for error status codes, each with the shared ``ErrorBody`` and when it happens.

    Listing 400 here also replaces Litestar's generated 400, which lists one schema per exception class
    under ``oneOf`` (identical schemas, so no body could match exactly one of them)."""
    return {
        code: ResponseSpec(ErrorBody, description=description, generate_examples=False)
        for code, description in codes.items()
    }


def optional_number(*, minimum: float | None = None, maximum: float | None = None) -> dict[str, Any]:
    """``schema_extra`` for an optional number parsed as ``Decimal`` (documented as a string otherwise)."""
    return {
        "oneOf": [
            Schema(type=OpenAPIType.NUMBER, minimum=minimum, maximum=maximum),
            Schema(type=OpenAPIType.NULL),
        ]
    }


def optional_list(items: Schema) -> dict[str, Any]:
    """``schema_extra`` for an optional repeated query parameter: an array, without the ``null`` branch a
    query string cannot express (with it, any single value also reads as valid)."""
    return {"oneOf": None, "type": OpenAPIType.ARRAY, "items": items}


def header(name: str, schema: Schema, description: str) -> Parameter:
    return Parameter(
        name=name, param_in=ParamType.HEADER, schema=schema, description=description, required=False
    )


def reads_json(body: Schema, *, headers: Sequence[Parameter] = ()) -> type[Operation]:
    """An ``operation_class`` documenting a JSON body (and headers) that the handler decodes itself."""

    @dataclass
    class RawJsonOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=body)}, required=True
            )
            if headers:
                self.parameters = [*(self.parameters or []), *headers]

    return RawJsonOperation


def query(name: str, schema: Schema, description: str) -> Parameter:
    return Parameter(
        name=name, param_in=ParamType.QUERY, schema=schema, description=description, required=False
    )


def reads_parameters(*parameters: Parameter) -> type[Operation]:
    """An ``operation_class`` documenting query parameters and headers that the handler reads itself
    (a hot route that skips Litestar's parameter parsing; see kernel.http.hot_path)."""

    @dataclass
    class RawParametersOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*(self.parameters or []), *parameters]

    return RawParametersOperation
