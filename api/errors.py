"""Errors as ``{"error": {"code": ..., "message": ...}}`` with a precise HTTP status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.core.errors import FaceditError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5  # what a 503 for a dependency outage tells clients to wait


class ApiError(Exception):
    """An error answered to the client: HTTP status, stable code, human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


_UNION_TAGS = {"EditIn", "str"}  # pydantic names the union member in error locations


def _loc(error: dict[str, Any]) -> list[str]:
    return [str(p) for p in error.get("loc", ()) if p != "body" and p not in _UNION_TAGS]


def _where(loc: list[str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    """(status, code, message) for a request FastAPI could not parse or validate."""
    errors = exc.errors()
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = error.get("ctx", {}).get("error", "")
            return 400, "invalid_json", f"the request body is not valid JSON: {detail}".strip()
    # An edit that is neither an object nor a string fails both union members; an
    # object's own problems are the ones worth reporting.
    errors = [e for e in errors if "str" not in e.get("loc", ())] or errors
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = _loc(first)
    where = _where(loc)
    kind = first.get("type", "")
    if kind == "missing":
        code, message = "missing_field", f"{where}: field required"
    elif "edits" in loc:
        code = "invalid_edit"
        message = f"{where}: " + ("unknown field" if kind == "extra_forbidden" else first["msg"])
    elif kind == "extra_forbidden":
        code, message = "unknown_field", f"{where}: unknown field"
    else:
        code = "invalid_option" if loc[:1] == ["options"] else "invalid_request"
        message = f"{where}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return 422, code, message


def _body_unparsable(exc: StarletteHTTPException) -> bool:
    """FastAPI's own 400 for a body its JSON parser gave up on (e.g. RecursionError on
    deeply nested arrays), as opposed to the JSON syntax errors validation reports."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, RecursionError | ValueError) or (
        isinstance(exc.detail, str) and "parsing the body" in exc.detail
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = describe_validation(exc)
        return error_response(status, code, message)

    @app.exception_handler(FaceditError)
    async def _dependency(_: Request, exc: FaceditError) -> JSONResponse:
        """A dependency that is down (database, storage, broker): 503 with Retry-After —
        the request changed nothing and may be sent again."""
        if exc.transient:
            return error_response(503, exc.code, exc.message,
                                  {"Retry-After": str(RETRY_AFTER_S)})
        log.error("unhandled %s: %s", exc.code, exc.message)
        return error_response(500, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 400 and _body_unparsable(exc):
            code = "invalid_json"
            message = "the request body is not valid JSON (or is nested too deeply to read)"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__})")
