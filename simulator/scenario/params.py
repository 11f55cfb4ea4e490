"""Scenario parameters: declared with a type and a range, checked before the story runs.

A scenario's ``PARAMS`` maps each name to its default, either plainly
(``{"k": 3}``) or as a :class:`Param` with bounds (``{"k": Param(3, minimum=1)}``).
A value from ``--param key=value`` takes the type of the default: a whole
number (sizes like ``4MiB`` allowed), a number, or text. Plain numbers may
not be negative; a ``Param`` says exactly what is allowed. Anything else is
refused in one line before the run starts, so a story never sees a value
it was not written for.
"""

from __future__ import annotations

import math

import attrs


class ParamError(ValueError):
    """A ``--param`` value of the wrong type or out of range; the message says what was expected."""


@attrs.frozen
class Param:
    """A scenario parameter's default and what values it accepts."""

    default: int | float | str
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[str, ...] | None = attrs.field(default=None, converter=lambda c: None if c is None else tuple(c))
    help: str = ""

    def parse(self, name: str, text: str, parse_size):
        """The value of ``--param name=text``, or a :class:`ParamError` naming what was expected."""
        value = _typed(name, text, self.default, parse_size)
        if self.choices is not None and value not in self.choices:
            raise ParamError(f"--param {name} must be one of {', '.join(self.choices)}, got {text!r}")
        if isinstance(value, (int, float)):
            if self.minimum is not None and value < self.minimum:
                raise ParamError(f"--param {name} must be >= {self.minimum}, got {text!r}")
            if self.maximum is not None and value > self.maximum:
                raise ParamError(f"--param {name} must be <= {self.maximum}, got {text!r}")
        return value


def declared(value) -> Param:
    """A ``PARAMS`` entry as a :class:`Param` (plain numbers: not negative)."""
    if isinstance(value, Param):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Param(value, minimum=0)
    return Param(value)


def _typed(name: str, text: str, default, parse_size):
    if isinstance(default, bool) or not isinstance(default, (int, float, str)):
        raise ParamError(f"--param {name}: the scenario's default {default!r} is not a number or text")
    if isinstance(default, str):
        return text
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return parse_size(text)
        except ValueError:
            raise ParamError(
                f"--param {name} expects a whole number or a size like 4MiB (default {default}), got {text!r}"
            ) from None
    try:
        value = float(text)
    except ValueError:
        raise ParamError(f"--param {name} expects a number (default {default}), got {text!r}") from None
    if not math.isfinite(value):
        raise ParamError(f"--param {name} expects a finite number, got {text!r}")
    return value
