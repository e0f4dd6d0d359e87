"""The one error type for bad user input: a line naming where, the field, the value and why.

The library raises :class:`InputError` with field names (``bars``, ``song.key``); the CLI turns a
field that is one of its options into flag wording (``--bars``) and prints the line, exit code 2.
"""

from __future__ import annotations

import os
from typing import Any


class InputError(ValueError):
    """Bad input: ``where`` (a file, or "" for an argument), ``field``, ``value``, ``expected``."""

    def __init__(self, field: str, value: Any, expected: str, where: str = "") -> None:
        self.field, self.value, self.expected, self.where = field, value, expected, where
        super().__init__(self.line())

    def line(self, field_text: str | None = None) -> str:
        """The one-line message; ``field_text`` replaces the field's name (e.g. a CLI flag)."""
        head = f"{self.where}: " if self.where else ""
        value = _short(self.value)
        return f"{head}{field_text or self.field} = {value}: expected {self.expected}"


def _short(value: Any) -> str:
    return clip(repr(value), value)


def clip(text: str, value: Any) -> str:
    """``text`` (how ``value`` is shown) cut short: a 400-digit number must not flood the line.

    A path is never cut (its file name is the point); other text is kept to a readable length.
    """
    if isinstance(value, os.PathLike):
        return text
    limit = 200 if isinstance(value, str) else 60
    return text if len(text) <= limit else text[: limit - 3] + "..."
