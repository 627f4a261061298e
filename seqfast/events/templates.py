"""Message templates: parsing, rendering, and Seq's token list for the event API.

A template such as `Hello {Name}, you have {Count,5:000} new {@Items}` is text with property
tokens.  A token is `{`, an optional hint (`@` destructure, `$` stringify), a name of ASCII
letters, digits and `_`, an optional alignment (`,-10` left, `,10` right) and an optional format
(`:000`), then `}`.  `{{` and `}}` are literal braces.  Anything else that looks like a token
but is not one (an empty name, a bad alignment, a brace left open) stays as text, so rendering
never fails: a malformed template renders as itself.

The grammar follows `seqfast.testing.reference_eval` (the oracle the query engine is checked
against) so that `@Message` means the same in the engine and in the oracle; where the oracle
declines (alignment, formats other than `:l`, floats, arrays, objects), values render as
Serilog renders them with .NET's invariant culture:

* strings in double quotes, `"` escaped as `\\"`, unless the format is `l` (literal);
* `True`/`False`, `null`, integers in decimal;
* floating-point numbers as .NET's shortest round-trip text (`0.1`, `1E+15`, `1E-05`, `NaN`);
* arrays as `[1, "a"]`; objects as `{ a: 1, b: "x" }`, prefixed by their `$type` tag when they
  have one (`Point { X: 1 }`);
* numbers with a .NET numeric format: `D`, `X`, `F`, `N`, `E`, `G`, `P`, `R` (with an optional
  precision) and the custom forms built of `0`, `#`, `,` and one `.` (`0.00`, `#,##0`);
  a format that does not apply to the value is ignored.

A CLEF event's `@r` holds the client's own rendering of each token that has a format, in token
order; those are used as given (they already include any alignment).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

# `{{`, `}}`, or a token: hint, name, alignment (up to a colon), format (up to the brace).
_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([@$]?)([A-Za-z0-9_]+)(,[^{}:]*)?(:[^{}]*)?\}")
_ALIGNMENT: Final = re.compile(r"-?[0-9]+")
# Longest alignment honoured: padding is cheap, but a template must not be able to ask for
# gigabytes of spaces.
MAX_ALIGNMENT: Final = 10_000


@dataclass(frozen=True)
class TextToken:
    text: str  # the text as rendered (`{{` already turned into `{`)
    raw: str  # as written in the template


@dataclass(frozen=True)
class PropertyToken:
    name: str
    raw: str  # the whole token as written, braces included
    hint: str  # "", "@" or "$"
    alignment: int | None  # width; negative pads on the right (left-aligned)
    format: str | None


Token = TextToken | PropertyToken


def _format_is_valid(fmt: str) -> bool:
    # Serilog accepts letters, digits, punctuation, symbols and spaces in a format.
    return all(c.isalnum() or c == " " or (c.isprintable() and not c.isspace()) for c in fmt)


def _property_token(found: re.Match[str]) -> PropertyToken | None:
    hint, name, alignment_text, format_text = found.groups()
    alignment: int | None = None
    if alignment_text is not None:
        width = alignment_text[1:]
        if not _ALIGNMENT.fullmatch(width) or int(width) == 0:
            return None
        alignment = max(-MAX_ALIGNMENT, min(MAX_ALIGNMENT, int(width)))
    fmt: str | None = None
    if format_text is not None and len(format_text) > 1:
        fmt = format_text[1:]
        if not _format_is_valid(fmt):
            return None
    return PropertyToken(name, found.group(0), hint, alignment, fmt)


@functools.lru_cache(maxsize=4096)
def parse(template: str) -> tuple[Token, ...]:
    """The tokens of a template; adjacent text (escaped braces included) is one text token."""
    tokens: list[Token] = []
    text: list[str] = []
    raw: list[str] = []

    def add_text(rendered: str, written: str) -> None:
        text.append(rendered)
        raw.append(written)

    def close_text() -> None:
        if raw:
            tokens.append(TextToken("".join(text), "".join(raw)))
            text.clear()
            raw.clear()

    at = 0
    for found in _TOKEN.finditer(template):
        if found.start() > at:
            between = template[at : found.start()]
            add_text(between, between)
        at = found.end()
        whole = found.group(0)
        if whole in ("{{", "}}"):
            add_text(whole[0], whole)
            continue
        token = _property_token(found)
        if token is None:
            add_text(whole, whole)
            continue
        close_text()
        tokens.append(token)
    if at < len(template):
        add_text(template[at:], template[at:])
    close_text()
    return tuple(tokens)


# --- values -------------------------------------------------------------------------------------


def format_double(value: float) -> str:
    """.NET's shortest round-trip text of a double (`double.ToString()` since .NET Core 3.0)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    exponent += len(digits) - len(text)
    scientific = len(text) - 1 + exponent  # the exponent of d.ddd × 10^e
    minus = "-" if sign else ""
    if scientific >= 15 or scientific < -4:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        mark = "+" if scientific >= 0 else "-"
        return f"{minus}{mantissa}E{mark}{abs(scientific):02d}"
    if exponent >= 0:
        return minus + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return f"{minus}{text[:point]}.{text[point:]}"
    return f"{minus}0.{'0' * -point}{text}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _default_number(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_double(value)
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    return format(value, "f")


_STANDARD: Final = re.compile(r"([A-Za-z])([0-9]{1,2})?")
_CUSTOM: Final = re.compile(r"[0#,]*(\.[0#]*)?")


def _exponent_text(text: str, upper: bool, digits: int) -> str:
    """Python's `1.5e+03` in .NET's shape: `1.5E+003` (at least `digits` exponent digits)."""
    mantissa, _, exponent = text.partition("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}{'E' if upper else 'e'}{sign}{exponent.lstrip('+-').zfill(digits)}"


def _standard_number(
    value: int | float | Decimal, letter: str, precision: int | None
) -> str | None:
    upper = letter.isupper()
    kind = letter.upper()
    if kind == "D":
        if not isinstance(value, int):
            return None
        text = str(abs(value)).zfill(precision or 0)
        return ("-" if value < 0 else "") + text
    if kind == "X":
        if not isinstance(value, int):
            return None
        if value < 0:  # .NET prints the two's complement of the integer's width
            value += 1 << (32 if value >= -(1 << 31) else 64)
            if value < 0:
                return None
        text = format(value, "X" if upper else "x")
        return text.zfill(precision or 0)
    if isinstance(value, float) and not math.isfinite(value):
        return format_double(value)
    if kind == "F":
        return format(value, f".{2 if precision is None else precision}f")
    if kind == "N":
        return format(value, f",.{2 if precision is None else precision}f")
    if kind == "E":
        text = format(value, f".{6 if precision is None else precision}e")
        return _exponent_text(text, upper, 3)
    if kind == "P":
        scaled = value * 100
        return format(scaled, f",.{2 if precision is None else precision}f") + " %"
    if kind == "C":
        text = format(abs(value), f",.{2 if precision is None else precision}f")
        return ("-" if value < 0 else "") + "¤" + text
    if kind in ("G", "R"):
        if precision is None or kind == "R" or isinstance(value, int):
            if isinstance(value, int) and precision is not None:
                text = format(value, f".{precision}g")
                return _exponent_text(text, upper, 2) if "e" in text else text
            return _default_number(value)
        text = format(value, f".{precision}g")
        return _exponent_text(text, upper, 2) if "e" in text else text
    return None


def _custom_number(value: int | float | Decimal, fmt: str) -> str | None:
    if not _CUSTOM.fullmatch(fmt) or not any(c in fmt for c in "0#"):
        return None
    whole, _, fraction = fmt.partition(".")
    grouped = "," in whole.rstrip(",")
    min_whole = whole.replace(",", "").lstrip("#").count("0")
    required = len(fraction.rstrip("#")) if fraction else 0
    optional = len(fraction)
    try:
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        # .NET rounds custom formats half away from zero.
        exact = exact.quantize(Decimal(1).scaleb(-optional), rounding=ROUND_HALF_UP)
        text = format(exact, f"{',' if grouped else ''}.{optional}f")
    except (InvalidOperation, ValueError):
        return None
    negative = text.startswith("-")
    text = text.lstrip("-")
    integer, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(required, "0")
    digits = integer.replace(",", "")
    if digits == "0" and min_whole == 0:
        integer = ""
    elif len(digits) < min_whole:
        padded = digits.zfill(min_whole)
        integer = format(int(padded), ",").zfill(len(padded)) if grouped else padded
    result = integer + ("." + decimals if decimals else "")
    if not result:
        result = "0" if min_whole else ""
    if negative and any(c not in "0.," for c in result):
        result = "-" + result
    return result


def format_number(value: int | float | Decimal, fmt: str | None) -> str:
    """A number under a .NET numeric format string; the default text when it does not apply."""
    if fmt:
        standard = _STANDARD.fullmatch(fmt)
        try:
            if standard is not None:
                precision = standard.group(2)
                text = _standard_number(
                    value, standard.group(1), None if precision is None else int(precision)
                )
            else:
                text = _custom_number(value, fmt)
        except (ValueError, OverflowError, InvalidOperation):
            text = None
        if text is not None:
            return text
    return _default_number(value)


def render_value(value: Any, fmt: str | None = None) -> str:
    """One property value as Serilog renders it inside a message."""
    if isinstance(value, str):
        return value if fmt == "l" else '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "null"
    if _is_number(value):
        return format_number(value, fmt)
    if isinstance(value, Sequence):
        return "[" + ", ".join(render_value(v, fmt) for v in value) + "]"
    if isinstance(value, Mapping):
        tag = value.get("$type")
        members = ", ".join(
            f"{k}: {render_value(v, fmt)}" for k, v in value.items() if k != "$type"
        )
        body = "{ " + members + " }"
        return f"{tag} {body}" if isinstance(tag, str) else body
    return str(value)


def _pad(text: str, alignment: int | None) -> str:
    if alignment is None or len(text) >= abs(alignment):
        return text
    return text.ljust(-alignment) if alignment < 0 else text.rjust(alignment)


def _token_texts(
    template: str, properties: Mapping[str, Any], renderings: Sequence[Any] | None
) -> list[tuple[Token, str | None]]:
    """Each token with the text it renders as (None: a token naming no property)."""
    out: list[tuple[Token, str | None]] = []
    formatted = 0
    for token in parse(template):
        if isinstance(token, TextToken):
            out.append((token, token.text))
            continue
        rendering: Any = None
        if token.format is not None:
            if renderings is not None and formatted < len(renderings):
                rendering = renderings[formatted]
            formatted += 1
        if token.name not in properties:
            out.append((token, None))
        elif isinstance(rendering, str):
            out.append((token, rendering))
        else:
            value = properties[token.name]
            out.append((token, _pad(render_value(value, token.format), token.alignment)))
    return out


def _renderings(renderings: Any) -> Sequence[Any] | None:
    return renderings if isinstance(renderings, list | tuple) else None


def render(
    template: str, properties: Mapping[str, Any], renderings: Sequence[Any] | None = None
) -> str:
    """The message: each token replaced by its property's value; a token naming no property
    stays as written.  `properties` may be a whole CLEF event (no token names an `@` key)."""
    if "{" not in template and "}" not in template:
        return template
    texts = _token_texts(template, properties, _renderings(renderings))
    return "".join(token.raw if text is None else text for token, text in texts)


def tokens(
    template: str, properties: Mapping[str, Any], renderings: Sequence[Any] | None = None
) -> list[dict[str, str]]:
    """Seq's `MessageTemplateTokens`: `{"Text"}` for text, `{"PropertyName", "RawText"}` for a
    property, with `FormattedValue` when the token carries a format or an alignment (the value
    as rendered, so a client need not know .NET's formatting)."""
    out: list[dict[str, str]] = []
    given = _renderings(renderings)
    formatted = 0
    for token in parse(template):
        if isinstance(token, TextToken):
            out.append({"Text": token.text})
            continue
        part = {"PropertyName": token.name, "RawText": token.raw}
        if token.format is not None or token.alignment is not None:
            rendering: Any = None
            if token.format is not None:
                if given is not None and formatted < len(given):
                    rendering = given[formatted]
                formatted += 1
            if isinstance(rendering, str) and token.name in properties:
                part["FormattedValue"] = rendering
            elif token.name in properties:
                text = render_value(properties[token.name], token.format)
                part["FormattedValue"] = _pad(text, token.alignment)
        out.append(part)
    return out


def escape(text: str) -> str:
    """A template that renders as `text` (its braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")
