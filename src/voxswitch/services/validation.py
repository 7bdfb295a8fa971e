"""Checks the PBX's services share, each naming the field at fault: E.164 numbers, number patterns,
plain text. Problems are collected so one bad request reports every field at once."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from voxswitch.errors import ErrorKind, FieldProblem, VoxError

# ITU-T E.164: "+", a country code that does not start with 0, at most 15 digits in all.
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# A prefix pattern: the start of an E.164 number, then "*" ("+1900*"); at least the first digit.
E164_PREFIX = re.compile(r"^\+[1-9]\d{0,13}\*$")
MAX_ID = 2_147_483_647  # the integer ids are 32-bit columns on PostgreSQL


class Problems:
    """Field problems gathered while checking one request; `check()` raises them together."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field: str, message: str, value: Any = None) -> None:
        self.items.append(FieldProblem(field, message, value))

    def __bool__(self) -> bool:
        return bool(self.items)

    def check(self, kind: ErrorKind = ErrorKind.VALIDATION) -> None:
        if self.items:
            names = ", ".join(dict.fromkeys(p.field for p in self.items))
            raise VoxError(kind, f"Validation failed: {names}", list(self.items))


def is_e164(value: object) -> bool:
    return isinstance(value, str) and E164.match(value) is not None


def is_number_pattern(value: object) -> bool:
    """An E.164 number or a prefix of one ending in `*`, as the blocklist and caller patterns take."""
    return isinstance(value, str) and (E164.match(value) is not None or E164_PREFIX.match(value) is not None)


def has_control_characters(value: str) -> bool:
    """Control characters and lone surrogates: no name needs them and PostgreSQL refuses NUL."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def plain_text(problems: Problems, field: str, value: object, *, max_length: int, min_length: int = 0) -> str | None:
    """`value` when it is a string of acceptable length without control characters, else None."""
    if not isinstance(value, str):
        problems.add(field, "must be a string")
        return None
    if has_control_characters(value):
        problems.add(field, "must not contain control characters")
        return None
    text = value.strip()
    if len(text) < min_length or len(text) > max_length:
        if min_length:
            problems.add(field, f"must be {min_length}-{max_length} characters", value)
        else:
            problems.add(field, f"must be at most {max_length} characters", value)
        return None
    return text


def object_id(problems: Problems, field: str, value: object) -> int | None:
    """A positive integer id (not a bool, not a float, within the columns' range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        problems.add(field, "must be a positive integer id", value if isinstance(value, int | str) else None)
        return None
    return value
