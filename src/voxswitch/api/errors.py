"""Render a `VoxError` in the error shape of the surface the request came in on.

Each source document defines its own error body; a client migrating from one of them keeps parsing
errors the way it always has. The shapes, by document:
- voice-call-api.md: `{"error": "...", "missing": [...], "required": [...]}` / `{"error", "details"}`
- callbot-api.md and softphone-api.md: `{"error": {"code", "message", "details"}, "timestamp", "request_id"}`
- agents-api.md: `{"success": false, "data": null, "error": {"code", "message", "details"}, "timestamp"}`
- pbx-api.md: `{"error": {"code", "message", "details": [{"field", "message"}]}}`
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxswitch.api.surfaces import Surface, surface_for_path
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.logs import request_id_var

K = ErrorKind
_AGENTS_CODES = {
    K.AUTHENTICATION: "AUTH_001",
    K.TOKEN_EXPIRED: "AUTH_002",
    K.TOKEN_INVALID: "AUTH_003",
    K.AUTHORIZATION: "AUTH_004",
    K.VALIDATION: "VALIDATION_001",
    K.MISSING_FIELDS: "VALIDATION_001",
    K.BAD_REQUEST: "REQUEST_001",
    K.NOT_FOUND: "NOT_FOUND_001",
    K.CONFLICT: "CONFLICT_001",
    K.RATE_LIMITED: "RATE_LIMIT_001",
    K.UNAVAILABLE: "SERVICE_001",
    K.INTERNAL: "SERVER_001",
}
_SOFTPHONE_CODES = {
    K.AUTHENTICATION: "AUTHENTICATION_FAILED",
    K.TOKEN_EXPIRED: "TOKEN_EXPIRED",
    K.TOKEN_INVALID: "INVALID_TOKEN",
    K.AUTHORIZATION: "FORBIDDEN",
    K.VALIDATION: "VALIDATION_ERROR",
    K.MISSING_FIELDS: "VALIDATION_ERROR",
    K.BAD_REQUEST: "BAD_REQUEST",
    K.NOT_FOUND: "NOT_FOUND",
    K.CONFLICT: "CONFLICT",
    K.RATE_LIMITED: "RATE_LIMIT_EXCEEDED",
    K.UNAVAILABLE: "SERVICE_UNAVAILABLE",
    K.INTERNAL: "INTERNAL_ERROR",
}
_CALLBOT_CODES = {
    **_SOFTPHONE_CODES,
    K.VALIDATION: "INVALID_REQUEST",
    K.MISSING_FIELDS: "INVALID_REQUEST",
    K.BAD_REQUEST: "INVALID_REQUEST",
    K.TOKEN_EXPIRED: "AUTHENTICATION_FAILED",
    K.TOKEN_INVALID: "AUTHENTICATION_FAILED",
}
_PBX_CODES = {
    K.VALIDATION: "validation_error",
    K.MISSING_FIELDS: "validation_error",
    K.BAD_REQUEST: "bad_request",
    K.AUTHENTICATION: "authentication_error",
    K.TOKEN_EXPIRED: "authentication_error",
    K.TOKEN_INVALID: "authentication_error",
    K.AUTHORIZATION: "authorization_error",
    K.NOT_FOUND: "not_found",
    K.CONFLICT: "conflict",
    K.RATE_LIMITED: "rate_limited",
    K.UNAVAILABLE: "service_unavailable",
    K.INTERNAL: "internal_error",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _value(p: FieldProblem) -> Any:
    return p.value if p.has_value and isinstance(p.value, str | int | float | bool | None) else None


def _detail_text(err: VoxError) -> str:
    if err.problems:
        return "; ".join(f"{p.field}: {p.message}" for p in err.problems)
    return err.details or err.message


def error_body(surface: Surface, err: VoxError, request_id: str) -> dict[str, Any]:
    """The JSON body for `err` as `surface`'s document shapes it."""
    problems = err.problems
    if surface is Surface.VOICE:
        if err.kind is K.MISSING_FIELDS:
            return {
                "error": "Missing required fields",
                "missing": [p.field for p in problems],
                "required": err.required or [p.field for p in problems],
            }
        if err.kind is K.INTERNAL:
            return {
                "error": "Internal server error",
                "details": f"{err.details or err.message} (request {request_id})",
            }
        body: dict[str, Any] = {"error": err.message, "details": _detail_text(err)}
        if problems:
            body["field"] = problems[0].field
            body["errors"] = [{"field": p.field, "message": p.message} for p in problems]
        return body
    if surface is Surface.AGENTS:
        error: dict[str, Any] = {
            "code": err.code or _AGENTS_CODES[err.kind],
            "message": err.message,
            "details": _detail_text(err),
        }
        if problems:
            error["fields"] = [{"field": p.field, "message": p.message} for p in problems]
        return {"success": False, "data": None, "error": error, "timestamp": now_iso()}
    if surface is Surface.PBX:
        return {
            "error": {
                "code": err.code or _PBX_CODES[err.kind],
                "message": err.message,
                "details": [{"field": p.field, "message": p.message} for p in problems],
            }
        }
    # softphone and callbot share an envelope; their `details` objects differ.
    if surface is Surface.SOFTPHONE:
        codes = _SOFTPHONE_CODES
        details: dict[str, Any] = {}
        if problems:
            details = {"field": problems[0].field, "provided_value": _value(problems[0])}
            if len(problems) > 1:
                details["errors"] = [{"field": p.field, "message": p.message} for p in problems]
        elif err.details:
            details = {"reason": err.details}
    else:
        codes = _CALLBOT_CODES
        details = {}
        if problems:
            details = {"parameter": problems[0].field, "message": problems[0].message}
            if len(problems) > 1:
                details["errors"] = [{"parameter": p.field, "message": p.message} for p in problems]
        elif err.details:
            details = {"reason": err.details}
    return {
        "error": {"code": err.code or codes[err.kind], "message": err.message, "details": details},
        "timestamp": now_iso(),
        "request_id": request_id,
    }


def error_response(request_path: str, err: VoxError) -> JSONResponse:
    request_id = request_id_var.get() or "-"
    body = error_body(surface_for_path(request_path), err, request_id)
    headers = dict(err.headers)
    if err.kind in (K.AUTHENTICATION, K.TOKEN_EXPIRED, K.TOKEN_INVALID) and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=err.status, headers=headers)


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(x) for x in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"} and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


def from_validation_error(exc: RequestValidationError, surface: Surface) -> VoxError:
    """FastAPI/pydantic validation errors as one VoxError naming every offending field."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return VoxError(K.BAD_REQUEST, "Request body is not valid JSON", [FieldProblem("body", "invalid JSON")])
    problems = []
    for e in errors:
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "missing":
            message = "is required"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(FieldProblem(_field_of(e.get("loc", ())) or "body", message, e.get("input")))
    if surface is Surface.VOICE and errors and all(e.get("type") == "missing" for e in errors):
        return VoxError(K.MISSING_FIELDS, "Missing required fields", problems)
    names = ", ".join(dict.fromkeys(p.field for p in problems))
    return VoxError(K.VALIDATION, f"Validation failed: {names}", problems)


_HTTP_KINDS = {
    400: K.BAD_REQUEST,
    401: K.AUTHENTICATION,
    403: K.AUTHORIZATION,
    404: K.NOT_FOUND,
    409: K.CONFLICT,
    429: K.RATE_LIMITED,
    503: K.UNAVAILABLE,
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VoxError)
    async def _vox(request: Request, exc: VoxError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request.url.path, from_validation_error(exc, surface_for_path(request.url.path)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, K.BAD_REQUEST)
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        err = VoxError(kind, message, headers=dict(exc.headers or {}))
        response = error_response(request.url.path, err)
        response.status_code = exc.status_code  # 405, 415 and friends keep their own status
        return response
