"""Kubernetes resource quantities (``256Mi``, ``500m``, ``1.5Gi``), read, scaled and written back.

An override that raises a memory limit by a factor must do Kubernetes' arithmetic: ``256Mi`` x 1.5
is ``384Mi``, and ``1Gi`` x 1.5 is ``1536Mi`` (not ``1.5Gi``, which the API server would accept but
a reader comparing values would not expect). A result is written with the suffix it was read with
when it is a whole number in that unit, else with the next smaller unit of the same family that
makes it one; at the finest unit allowed it is rounded up, because a limit raised to fix an OOM
kill must never come out lower than asked. Plain numbers (a replica count) stay numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

__all__ = ["Quantity", "QuantityError", "amount", "format_quantity", "parse", "scale"]


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


_BINARY = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki", "")
_DECIMAL = ("E", "P", "T", "G", "M", "k", "", "m", "u", "n")
_MULTIPLIERS: dict[str, Decimal] = {
    **{suffix: Decimal(1024) ** (6 - index) for index, suffix in enumerate(_BINARY)},
    **{suffix: Decimal(10) ** (18 - 3 * index) for index, suffix in enumerate(_DECIMAL)},
}
_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
)


@dataclass(frozen=True)
class Quantity:
    """A quantity: its value in base units (bytes, cores) and the suffix it was written with."""

    value: Decimal
    suffix: str = ""

    @property
    def binary(self) -> bool:
        """Whether it was written in powers of two (``Mi``): the result is written in that family too."""
        return self.suffix in _BINARY and self.suffix != ""

    def __str__(self) -> str:
        return format_quantity(self.value, self.suffix)


def parse(text: str | int | float) -> Quantity:
    """The quantity ``text`` says (``QuantityError`` when it is none)."""
    if isinstance(text, bool):
        raise QuantityError(f"{text!r} is not a quantity")
    if isinstance(text, int | float):
        return Quantity(Decimal(str(text)))
    match = _PATTERN.match(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity (e.g. 256Mi, 500m, 2)")
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return Quantity(number * Decimal(10) ** int(suffix[1:]))
    return Quantity(number * _MULTIPLIERS[suffix], suffix)


def format_quantity(value: Decimal, suffix: str = "", *, finest: str | None = None) -> str:
    """``value`` (base units) written with ``suffix`` or the next smaller unit that makes it whole.

    ``finest`` is the smallest unit tried (default: base units, or ``suffix`` when it is finer,
    e.g. ``m`` for millicores); at it the value is rounded up.
    """
    family: tuple[str, ...] = _BINARY if suffix in _BINARY and suffix != "" else _DECIMAL
    smallest = finest if finest is not None else ("" if _MULTIPLIERS[suffix] >= 1 else suffix)
    if smallest not in family:
        family = (*_BINARY[:-1], *_DECIMAL[_DECIMAL.index("") :])
    start = family.index(suffix)
    stop = max(start, family.index(smallest))
    for unit in family[start : stop + 1]:
        amount = value / _MULTIPLIERS[unit]
        if amount == amount.to_integral_value():
            return f"{int(amount)}{unit}"
    unit = family[stop]
    amount = (value / _MULTIPLIERS[unit]).to_integral_value(rounding=ROUND_CEILING)
    return f"{int(amount)}{unit}"


def amount(value: str | int | float) -> Decimal:
    """The value in base units (bytes, cores, replicas) of a quantity or a plain number."""
    return parse(value).value


def scale(
    value: str | int | float, factor: float, *, at_most: Decimal | None = None, finest: str | None = None
) -> str | int:
    """``value`` x ``factor``, never above ``at_most`` (base units), written the way ``value`` was.

    Integers stay integers, rounded up (two replicas x 1.5 are three); quantities are written by
    ``format_quantity`` (``finest="m"`` lets a CPU value end in millicores).
    """
    try:
        multiplier = Decimal(str(factor))
    except InvalidOperation as error:
        raise QuantityError(f"{factor!r} is not a factor") from error
    if isinstance(value, int) and not isinstance(value, bool):
        whole = (Decimal(value) * multiplier).to_integral_value(rounding=ROUND_CEILING)
        if at_most is not None:
            whole = min(whole, at_most.to_integral_value(rounding=ROUND_CEILING))
        return int(whole)
    quantity = parse(value)
    result = quantity.value * multiplier
    if at_most is not None:
        result = min(result, at_most)
    return format_quantity(result, quantity.suffix, finest=finest)
