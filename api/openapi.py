"""The OpenAPI document, made to describe the errors the API really answers.

FastAPI documents a 422 as its own ``HTTPValidationError`` on every route with a parameter,
and nothing else. Here every operation documents each status it can answer with the body it
really has — :class:`api.schemas.ErrorBody`, ``{"error": {"code", "message"}}`` — and the
headers that come with it:

- every operation: 500 ``internal_error``;
- operations that need an API key (the bearer scheme, declared by :data:`api.deps.bearer_scheme`):
  401 (with ``WWW-Authenticate``), 429 ``rate_limited`` (``Retry-After`` and the RateLimit
  fields), 503 for a dependency that is down (``Retry-After``), and the RateLimit fields on
  their successful answers;
- operations with a request body: 400 ``invalid_json`` and 422; with query parameters: 422;
- every method but GET: 413 ``body_too_large`` (api/limits.py reads any body first);
- what only some routes answer (404, 409, 403, 501, more 422 codes, …) is declared on the
  route with :func:`errors`.

``HTTPValidationError`` and ``ValidationError`` are not in the document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI

from api.ratelimit import DRAFT
from api.schemas import ErrorBody

ERROR_REF = "#/components/schemas/ErrorBody"

# Each status: its title, and what it means (with its codes) wherever a route does not say.
STATUSES: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "`invalid_json`: the body is not JSON (or is nested too deeply)"),
    401: ("Unauthorized", "`missing_api_key`, `invalid_api_key` or `api_key_revoked`"),
    403: ("Forbidden", "not allowed"),
    404: ("Not Found", "no such resource for this API key"),
    409: ("Conflict", "not possible in the current state"),
    413: ("Content Too Large", "`body_too_large`: larger than FACEDIT_API_MAX_BODY_BYTES"),
    422: ("Unprocessable Content", "`invalid_request`: a parameter is invalid"),
    429: (
        "Too Many Requests",
        "`rate_limited`: the API key's rate limit is spent; retry after `Retry-After` seconds",
    ),
    500: ("Internal Server Error", "`internal_error`: a bug"),
    501: ("Not Implemented", "not available in this deployment"),
    503: (
        "Service Unavailable",
        "`database_unavailable`, `storage_unavailable` or `broker_unavailable`: a dependency "
        "is down; nothing changed, retry after `Retry-After` seconds",
    ),
}

# Response headers, in components/headers (responses refer to them).
_INTEGER = {"type": "integer", "minimum": 0}
HEADERS: dict[str, Any] = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": _INTEGER},
    "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
    "RateLimit-Limit": {
        "description": f"quota of the policy closest to exhaustion ({DRAFT})",
        "schema": _INTEGER,
    },
    "RateLimit-Remaining": {
        "description": "quota units left in its window", "schema": _INTEGER,
    },
    "RateLimit-Reset": {
        "description": "seconds until the oldest unit counted leaves its window",
        "schema": _INTEGER,
    },
    "RateLimit-Policy": {
        "description": 'every quota that applied, e.g. `40;w=2;comment="requests", '
                       '1000;w=60;comment="images"`',
        "schema": {"type": "string"},
    },
}  # fmt: skip
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                      "RateLimit-Policy")


def errors(codes: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status it answers beyond the common ones (see the
    module docstring) with what it means on this route, all with the error body."""
    return {
        status: {"model": ErrorBody, "description": f"{STATUSES[status][0]}: {text}"}
        for status, text in codes.items()
    }


# What POST /v1/jobs and POST /v1/batches answer beyond the common errors.
SUBMIT_ERRORS = errors({
    403: "`forbidden_input`: the input is not one of this key owner's uploads or results",
    422: "`unknown_field`, `missing_field`, `invalid_request`, `invalid_edit`, "
         "`unknown_attribute`, `invalid_option`, `model_unavailable`, `invalid_input`, "
         "`invalid_input_key`, `invalid_input_uri`, `input_not_found`, `invalid_image`, "
         "`image_too_large`, `too_many_images`, `invalid_callback_url`, `webhooks_disabled`, "
         "`invalid_idempotency_key` or `idempotency_conflict`",
    429: "`rate_limited`: too many requests, or more images than the API key may queue per "
         "minute now; retry after `Retry-After` seconds",
    503: "`attributes_unavailable` (no worker has started yet), `database_unavailable`, "
         "`storage_unavailable` or `broker_unavailable`; retry after `Retry-After` seconds",
})  # fmt: skip


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return FastAPI's document completed by :func:`describe_errors`
    (once per document FastAPI generates)."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()
        if not completed or completed[0] is not document:
            describe_errors(document)
            completed[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def describe_errors(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _add_error_schema(schemas)
    components.setdefault("headers", {}).update(HEADERS)
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            _describe_operation(method, operation)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _add_error_schema(schemas: dict[str, Any]) -> None:
    if "ErrorBody" in schemas:
        return
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas["ErrorBody"] = schema


def _common_statuses(method: str, operation: dict[str, Any]) -> set[int]:
    statuses = {500}
    if operation.get("security"):
        statuses |= {401, 429, 503}
    if "requestBody" in operation:
        statuses |= {400, 422}
    if any(p.get("in") == "query" for p in operation.get("parameters", ())):
        statuses.add(422)
    if method.upper() not in ("GET", "HEAD", "OPTIONS"):
        statuses.add(413)
    return statuses


def _is_fastapi_validation_error(response: dict[str, Any] | None) -> bool:
    schema = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")


def _describe_operation(method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if _is_fastapi_validation_error(responses.get("422")):
        del responses["422"]  # FastAPI's; the real one is added below where it can happen
    for status in sorted(_common_statuses(method, operation)):
        title, text = STATUSES[status]
        responses.setdefault(str(status), {"description": f"{title}: {text}"})
    limited = bool(operation.get("security"))
    for status, response in responses.items():
        code = int(status) if status.isdigit() else 0
        headers = response.setdefault("headers", {})
        if code >= 400:
            content = response.setdefault("content", {})
            content.setdefault("application/json", {"schema": {"$ref": ERROR_REF}})
        is_error_body = (
            response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            == ERROR_REF
        )
        names = []
        if code == 401:
            names.append("WWW-Authenticate")
        if code in (429, 503) and is_error_body:
            names.append("Retry-After")
        if limited and code != 401:
            names += RATE_LIMIT_HEADERS
        for name in names:
            headers[name] = {"$ref": f"#/components/headers/{name}"}
        if not headers:
            del response["headers"]
