"""One error type for every layer above the protocol cores.

Services raise `VoxError` with a *kind* (what went wrong, independent of HTTP) and the fields at
fault. Each API surface renders it in the shape and with the code its own document gives, so the
same failure reads as `AUTH_001` on the agents surface and `authentication_error` on the PBX's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    VALIDATION = "validation"
    MISSING_FIELDS = "missing_fields"
    BAD_REQUEST = "bad_request"
    AUTHENTICATION = "authentication"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"
    AUTHORIZATION = "authorization"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.VALIDATION: 400,
    ErrorKind.MISSING_FIELDS: 400,
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.TOKEN_EXPIRED: 401,
    ErrorKind.TOKEN_INVALID: 401,
    ErrorKind.AUTHORIZATION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}

_UNSET: Any = object()


@dataclass(frozen=True)
class FieldProblem:
    """One field at fault: its dotted location (`calls.3.ToNumber`), why, and what was sent."""

    field: str
    message: str
    value: Any = _UNSET

    @property
    def has_value(self) -> bool:
        return self.value is not _UNSET


@dataclass
class VoxError(Exception):
    kind: ErrorKind
    message: str
    problems: list[FieldProblem] = field(default_factory=list)
    code: str | None = None  # a surface-specific code that overrides the kind's default
    details: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)  # for MISSING_FIELDS: every required field

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.kind]

    @classmethod
    def invalid(cls, field_name: str, message: str, value: Any = _UNSET) -> VoxError:
        return cls(ErrorKind.VALIDATION, f"{field_name}: {message}", [FieldProblem(field_name, message, value)])

    @classmethod
    def not_found(cls, what: str, code: str | None = None) -> VoxError:
        return cls(ErrorKind.NOT_FOUND, f"{what} not found", code=code)
