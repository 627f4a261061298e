"""`Values`: the value of one expression for every row of a batch, as columns.

A row's value has a kind (`K_*`): undefined, null, false, true, number, string, array or
object.  Numbers live in `numbers` (float64); strings as UTF-8 text (`dense_strings`), often
with a dictionary (`string_dictionary`: a code per row and the distinct strings) so that
string work runs once per distinct value; arrays and objects as Python values (`objects`),
parsed from the column's JSON text only when something looks inside them.

Numbers
-------
The language's numbers are .NET decimals (`seqfast.testing.reference_eval` uses `Decimal`);
this engine computes with float64, which agrees with decimals on integers up to 2**53 and on
binary fractions (0.5, 0.25, ...) of moderate size.  Where every number of a `Values` is an
integer that fits int64 (INT columns, `@Timestamp`, durations, sums and differences of
those), `exact` holds them as int64 too, and comparisons, `+`, `-`, `*`, grouping and
`to_python` use those exact integers: timestamps (about 6.4e17 ticks) need all 64 bits.
Elsewhere results may differ from decimal arithmetic in the last digits (0.1 + 0.2), and
`to_python` gives the float's shortest decimal text as a `Decimal`.  Integers beyond int64
(BIGINT cells) are read as the nearest float.  Results of magnitude 10**29 or more, and
non-finite ones, are undefined, as decimal overflow is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from seqfast import _native
from seqfast.errors import SeqfastError
from seqfast.query.ast import NO_SPAN, Span
from seqfast.testing.reference_eval import UNDEFINED

__all__ = [
    "K_ARRAY",
    "K_FALSE",
    "K_NULL",
    "K_NUMBER",
    "K_OBJECT",
    "K_STRING",
    "K_TRUE",
    "K_UNDEFINED",
    "UNDEFINED",
    "QueryError",
    "Values",
    "fold",
]

K_UNDEFINED, K_NULL, K_FALSE, K_TRUE, K_NUMBER, K_STRING, K_ARRAY, K_OBJECT = range(8)

BoolArray = npt.NDArray[np.bool_]
UInt8Array = npt.NDArray[np.uint8]
Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

# Decimal overflow in the reference (Emax 28): anything this large is undefined.
NUMBER_LIMIT: Final = 1e29
# Distinct strings worth a dictionary: per distinct value work pays when values repeat.
_EMPTY_I64: Final[Int64Array] = np.zeros(0, dtype=np.int64)


class QueryError(SeqfastError, ValueError):
    """A filter or query that parses but that seqfast cannot evaluate as written.

    `span` locates the part of the text at fault (`NO_SPAN` when unknown).
    """

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span if span is not None else NO_SPAN


# --- case folding -----------------------------------------------------------------------------


def _fold_char(ch: str) -> str:
    upper = ch.upper()
    return upper if len(upper) == 1 else ch


def fold(text: str) -> str:
    """Seq's case-insensitive form of `text`: each character upper-cased when that gives a
    single character (so `ß` stays), which keeps every character in place."""
    if text.isascii():
        return text.upper()
    return "".join(_fold_char(ch) for ch in text)


def fold_deep(value: Any) -> Any:
    if isinstance(value, str):
        return fold(value)
    if isinstance(value, list):
        return [fold_deep(v) for v in value]
    if isinstance(value, dict):
        return {k: fold_deep(v) for k, v in value.items()}
    return value


# --- numbers ----------------------------------------------------------------------------------


def to_decimal(number: float) -> Decimal:
    """The decimal a float64 result stands for: integers exactly, others by shortest text."""
    if number.is_integer() and abs(number) < 2.0**63:
        return Decimal(int(number))
    return Decimal(repr(number))


def decimal_to_float(value: Decimal) -> float:
    return float(value)


def equal(a: Any, b: Any) -> bool:
    """Seq's `=` of two defined reference-shaped values: structural, types never mix."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return False


def from_json(value: Any) -> Any:
    """A JSON value (as parsed) in the reference shape: numbers as `Decimal`, non-finite
    numbers undefined (and left out of arrays and objects)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else UNDEFINED
    if isinstance(value, Decimal):
        return value if value.is_finite() else UNDEFINED
    if isinstance(value, list | tuple):
        items = [from_json(v) for v in value]
        return [v for v in items if v is not UNDEFINED]
    if isinstance(value, dict):
        members = {str(k): from_json(v) for k, v in value.items()}
        return {k: v for k, v in members.items() if v is not UNDEFINED}
    raise TypeError(f"not a JSON value: {value!r}")


def parse_json(text: str) -> Any:
    """Stored JSON text (an array or object) in the reference shape."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        # Integers beyond 64 bits: the standard library keeps them exact.
        parsed = json.loads(text)
    return from_json(parsed)


def kind_of(value: Any) -> int:
    """The `K_*` of a reference-shaped value."""
    if value is UNDEFINED:
        return K_UNDEFINED
    if value is None:
        return K_NULL
    if value is True:
        return K_TRUE
    if value is False:
        return K_FALSE
    if isinstance(value, Decimal | int | float):
        return K_NUMBER
    if isinstance(value, str):
        return K_STRING
    if isinstance(value, list):
        return K_ARRAY
    if isinstance(value, dict):
        return K_OBJECT
    raise TypeError(f"not a value: {value!r}")


def _group_key(value: Any) -> Any:
    """A hashable key equal for values that `=` calls equal (arrays and objects)."""
    if isinstance(value, bool):
        return ("b", value)
    if value is None:
        return ("z",)
    if isinstance(value, Decimal):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("a", tuple(_group_key(v) for v in value))
    return ("o", frozenset((k, _group_key(v)) for k, v in value.items()))


# --- values -----------------------------------------------------------------------------------


class Values:
    """The value of one expression for `n` rows (see the module documentation).

    Invariants: `kind` is uint8[n]; `numbers` float64[n] is meaningful where kind is
    K_NUMBER (finite, below `NUMBER_LIMIT` in magnitude); `exact`, when not None, holds the
    same numbers as int64 (every K_NUMBER row is such an integer).  String rows (K_STRING)
    have their text in the dense strings and/or the dictionary (whose list may hold the same
    string more than once); array and object rows have their value in `objects`, or JSON
    text in the dense strings when `objects` has not been built yet.
    """

    __slots__ = (
        "_codes",
        "_data",
        "_dict",
        "_dict_strings",
        "_dict_unique",
        "_group_strings",
        "_json_text",
        "_number_rows",
        "_numbers",
        "_objects",
        "_offsets",
        "exact",
        "is_constant",
        "kind",
        "n",
        "scalar",
    )

    def __init__(
        self,
        kind: UInt8Array,
        numbers: Float64Array | None = None,
        *,
        exact: Int64Array | None = None,
        strings: tuple[Int64Array, bytes] | None = None,
        dictionary: tuple[Int64Array, list[str]] | None = None,
        objects: ObjectArray | None = None,
        json_text: bool = False,
        dictionary_strings: tuple[Int64Array, bytes] | None = None,
        scalar: Any = None,
        dictionary_unique: bool = False,
    ) -> None:  # scalar: see `is_constant`; dictionary_unique: no string twice in it
        self.n = int(kind.shape[0])
        self.kind = kind
        # None: derived when first asked for (from `exact` when there is one, else zeros).
        self._numbers = numbers
        self.exact = exact
        self._offsets: Int64Array | None = None
        self._data = b""
        if strings is not None:
            self._offsets, self._data = strings
        self._codes: Int64Array | None = None
        self._dict: list[str] = []
        if dictionary is not None:
            self._codes, self._dict = dictionary
        self._dict_strings = dictionary_strings
        # Whether the dictionary holds each string once, so that grouping can number its
        # entries with numpy alone (see `group_codes`).
        self._dict_unique = dictionary_unique and dictionary is not None
        self._group_strings: tuple[int, Int64Array, bytes] | None = None
        self._objects = objects
        self._json_text = json_text
        self._number_rows: tuple[Int64Array | None, Float64Array] | None = None
        # The value of every row (reference shape) when `constant` made this; see is_constant.
        self.scalar = scalar
        self.is_constant = False

    @property
    def numbers(self) -> Float64Array:
        found = self._numbers
        if found is None:
            exact = self.exact
            found = np.zeros(self.n) if exact is None else exact.astype(np.float64)
            self._numbers = found
        return found

    # -- construction --------------------------------------------------------------------------

    @staticmethod
    def undefined(n: int) -> Values:
        return Values(np.zeros(n, dtype=np.uint8))

    @staticmethod
    def constant(value: Any, n: int) -> Values:
        """`value` (reference shape) in every one of `n` rows."""
        result = Values._constant(value, n)
        if result.kind.size == 0 or result.kind[0] != K_UNDEFINED:
            result.scalar = value
        else:
            result.scalar = UNDEFINED
        result.is_constant = True
        return result

    @staticmethod
    def _constant(value: Any, n: int) -> Values:
        kind = np.full(n, kind_of(value), dtype=np.uint8)
        if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
            number = float(value)
            if not math.isfinite(number) or abs(number) >= NUMBER_LIMIT:
                return Values.undefined(n)
            exact = None
            if isinstance(value, int) or (isinstance(value, Decimal) and value == int(value)):
                integer = int(value)
                if -(2**63) <= integer < 2**63:
                    exact = np.full(n, integer, dtype=np.int64)
            return Values(kind, np.full(n, number, dtype=np.float64), exact=exact)
        if isinstance(value, str):
            return Values(
                kind, dictionary=(np.zeros(n, dtype=np.int64), [value]), dictionary_unique=True
            )
        if isinstance(value, list | dict):
            objects = np.empty(n, dtype=object)
            for i in range(n):
                objects[i] = value
            return Values(kind, objects=objects)
        return Values(kind)

    @staticmethod
    def from_python(items: Sequence[Any]) -> Values:
        """Values of reference-shaped Python values (`UNDEFINED`, None, bools, numbers as
        Decimal/int/float, str, list, dict), one per row."""
        n = len(items)
        kind = np.zeros(n, dtype=np.uint8)
        numbers = np.zeros(n, dtype=np.float64)
        exact_list: list[int] | None = [0] * n
        codes = np.full(n, -1, dtype=np.int64)
        distinct: dict[str, int] = {}
        objects: ObjectArray | None = None
        for i, value in enumerate(items):
            k = kind_of(value)
            if k == K_NUMBER:
                number = float(value)
                if not math.isfinite(number) or abs(number) >= NUMBER_LIMIT:
                    continue  # stays undefined
                numbers[i] = number
                if exact_list is not None:
                    integral = isinstance(value, int) or (
                        isinstance(value, Decimal) and value == value.to_integral_value()
                    )
                    if integral and -(2**63) <= int(value) < 2**63:
                        exact_list[i] = int(value)
                    else:
                        exact_list = None
            elif k == K_STRING:
                code = distinct.setdefault(value, len(distinct))
                codes[i] = code
            elif k in (K_ARRAY, K_OBJECT):
                if objects is None:
                    objects = np.empty(n, dtype=object)
                objects[i] = value
            kind[i] = k
        exact = np.array(exact_list, dtype=np.int64) if exact_list is not None else None
        dictionary = (codes, list(distinct)) if distinct else None
        return Values(
            kind,
            numbers,
            exact=exact,
            dictionary=dictionary,
            objects=objects,
            dictionary_unique=True,
        )

    # -- the contract ----------------------------------------------------------------------

    def true_mask(self) -> BoolArray:
        """Rows whose value is exactly true."""
        result: BoolArray = self.kind == K_TRUE
        return result

    def defined_mask(self) -> BoolArray:
        result: BoolArray = self.kind != K_UNDEFINED
        return result

    def mask_of(self, k: int) -> BoolArray:
        result: BoolArray = self.kind == k
        return result

    def to_python(self, rows: npt.NDArray[np.integer[Any]] | None = None) -> list[Any]:
        """The values of `rows` (all rows by default) in reference_eval's shape: UNDEFINED,
        None, bool, Decimal, str, list, dict."""
        idx = np.arange(self.n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        kinds = self.kind[idx]
        out: list[Any] = [UNDEFINED] * int(idx.size)
        for k, constant in ((K_NULL, None), (K_FALSE, False), (K_TRUE, True)):
            for pos in np.flatnonzero(kinds == k).tolist():
                out[pos] = constant
        positions = np.flatnonzero(kinds == K_NUMBER)
        if positions.size:
            if self.exact is not None:
                for pos, integer in zip(
                    positions.tolist(), self.exact[idx[positions]].tolist(), strict=True
                ):
                    out[pos] = Decimal(integer)
            else:
                for pos, number in zip(
                    positions.tolist(), self.numbers[idx[positions]].tolist(), strict=True
                ):
                    out[pos] = to_decimal(number)
        positions = np.flatnonzero(kinds == K_STRING)
        if positions.size:
            for pos, text in zip(positions.tolist(), self.strings_at(idx[positions]), strict=True):
                out[pos] = text
        positions = np.flatnonzero(kinds >= K_ARRAY)
        if positions.size:
            objects = self.objects()
            for pos in positions.tolist():
                out[pos] = objects[idx[pos]]
        return out

    def take(self, rows: npt.NDArray[np.integer[Any]]) -> Values:
        """The values of `rows`, in that order (repeats allowed)."""
        idx = np.asarray(rows, dtype=np.int64)
        strings = None
        dictionary = None
        if self._codes is not None:
            dictionary = (self._codes[idx], self._dict)
        if self._offsets is not None and (dictionary is None or self._json_text):
            # Dense offsets never decrease, so they are a string list gather_strings can index.
            strings = _native.gather_strings(self._offsets, self._data, idx)
        objects = self._objects[idx] if self._objects is not None else None
        result = Values(
            self.kind[idx],
            self._numbers[idx] if self._numbers is not None else None,
            exact=self.exact[idx] if self.exact is not None else None,
            strings=strings,
            dictionary=dictionary,
            objects=objects,
            json_text=self._json_text and objects is None,
            dictionary_strings=self._dict_strings,
            dictionary_unique=self._dict_unique,
        )
        result.scalar = self.scalar
        result.is_constant = self.is_constant
        return result

    def group_codes(self, ci: bool = False) -> tuple[Int64Array, list[Any]]:
        """A code per row and the distinct keys: rows whose values are equal under `=` (with
        `ci`, ignoring case in strings) share a code; `keys[code]` is the value of the first
        such row (reference shape, `UNDEFINED` included)."""
        keys: list[Any] = []
        kinds = self.kind
        present = _native.byte_counts(kinds)
        # Rows of the constant kinds (and, until they are numbered below, the others) take
        # their kind's code; string rows go through the dictionary, both in one native pass.
        code_of_kind = np.zeros(256, dtype=np.int64)
        for k, constant in (
            (K_UNDEFINED, UNDEFINED),
            (K_NULL, None),
            (K_FALSE, False),
            (K_TRUE, True),
        ):
            if present[k]:
                code_of_kind[k] = len(keys)
                keys.append(constant)
        number_codes: Int64Array | None = None
        if present[K_NUMBER]:
            mask = kinds == K_NUMBER
            if self.exact is not None:
                uniq_i, inverse = np.unique(self.exact[mask], return_inverse=True)
                number_codes = len(keys) + inverse.reshape(-1)
                keys.extend(Decimal(v) for v in uniq_i.tolist())
            else:
                # -0.0 and 0.0 are equal, and np.unique keeps one of them.
                uniq_f, inverse = np.unique(self.numbers[mask], return_inverse=True)
                number_codes = len(keys) + inverse.reshape(-1)
                keys.extend(to_decimal(v) for v in uniq_f.tolist())
        dcodes = _EMPTY_I64
        remap = _EMPTY_I64
        string_kind = -1
        if present[K_STRING]:
            dictionary = self.string_dictionary(limit=None)
            assert dictionary is not None
            dcodes, distinct = dictionary
            string_kind = K_STRING
            used = _native.used_codes(kinds, dcodes, K_STRING, len(distinct))
            remap = np.full(len(distinct), -1, dtype=np.int64)
            base = len(keys)
            if self._dict_unique and not ci:
                # Each entry is its own key: number the used ones in dictionary order.
                chosen = np.flatnonzero(used)
                remap[chosen] = np.arange(base, base + chosen.size, dtype=np.int64)
                keys.extend([distinct[j] for j in chosen.tolist()])
                doff, ddata = self.dictionary_strings()
                self._group_strings = (base, *_native.gather_strings(doff, ddata, chosen))
            else:
                # Entries may repeat, and `ci` merges more: renumber distinct keys.
                seen: dict[str, int] = {}
                for j in np.flatnonzero(used).tolist():
                    text = distinct[j]
                    key = fold(text) if ci else text
                    code = seen.get(key)
                    if code is None:
                        code = seen[key] = len(seen)
                        keys.append(text)
                    remap[j] = base + code
            # The key of a group is its first row's value, which the dictionary order (first
            # appearance) already gives for a column; a computed dictionary may differ.
        codes: Int64Array = _native.apply_codes(kinds, dcodes, string_kind, remap, code_of_kind)
        if number_codes is not None:
            codes[kinds == K_NUMBER] = number_codes
        if present[K_ARRAY] or present[K_OBJECT]:
            positions = np.flatnonzero(kinds >= K_ARRAY)
            objects = self.objects()
            groups: dict[Any, int] = {}
            for pos in positions.tolist():
                value = objects[pos]
                key = _group_key(fold_deep(value) if ci else value)
                code = groups.get(key)
                if code is None:
                    code = groups[key] = len(keys)
                    keys.append(value)
                codes[pos] = code
        return codes, keys

    def number_rows(self) -> tuple[Int64Array | None, Float64Array]:
        """(rows, numbers) of the K_NUMBER rows, rows None when every row is one.  Kept: a
        column's Values serve many queries, whose aggregates each want its numbers."""
        found = self._number_rows
        if found is None:
            mask = self.kind == K_NUMBER
            if bool(mask.all()):
                found = (None, self.numbers)
            else:
                rows = np.flatnonzero(mask)
                found = (rows, self.numbers[rows])
            self._number_rows = found
        return found

    def group_key_strings(self) -> tuple[int, Int64Array, bytes] | None:
        """After `group_codes()` (without `ci`): (first, offsets, data) when its string
        keys are keys first, first + 1, ... and (offsets, data) is their UTF-8 bytes as a
        string list, so that they can be looked up by their bytes; else None."""
        return self._group_strings

    # -- strings -------------------------------------------------------------------------------

    def has_strings(self) -> bool:
        return bool((self.kind == K_STRING).any())

    def string_bytes(self) -> int:
        """Memory the strings take as held now: per-row strings when built, else the
        dictionary's codes and distinct strings (nothing is built to answer)."""
        if self._offsets is not None:
            return int(self._offsets.nbytes) + len(self._data)
        if self._codes is not None:
            size = int(self._codes.nbytes)
            if self._dict_strings is not None:
                size += int(self._dict_strings[0].nbytes) + len(self._dict_strings[1])
            else:
                size += sum(len(text) for text in self._dict)
            return size
        return 0

    def dense_strings(self) -> tuple[Int64Array, bytes]:
        """(offsets[n + 1], data): row i's text is data[offsets[i]:offsets[i + 1]] (meaningful
        for K_STRING rows; JSON text for array/object rows read from a column)."""
        if self._offsets is None:
            if self._codes is None:
                self._offsets = np.zeros(self.n + 1, dtype=np.int64)
                self._data = b""
            else:
                doff, ddata = self.dictionary_strings()
                # Rows without a string take an empty range (an extra empty entry at the end).
                doff = np.append(doff, doff[-1])
                codes = np.where(self._codes < 0, len(doff) - 2, self._codes)
                self._offsets, self._data = _native.gather_strings(
                    doff, ddata, codes.astype(np.int64, copy=False)
                )
        return self._offsets, self._data

    def string_dictionary(self, limit: int | None = None) -> tuple[Int64Array, list[str]] | None:
        """(codes[n], distinct): codes[i] >= 0 indexes `distinct` for every K_STRING row
        (other rows may hold -1 or any code).  None when there are more than `limit` distinct
        strings (None: no limit)."""
        if self._codes is not None:
            return self._codes, self._dict
        offsets, data = self.dense_strings()
        mask = self.kind == K_STRING
        rows = np.flatnonzero(mask)
        m = int(rows.size)
        if m == 0:
            return np.full(self.n, -1, dtype=np.int64), []
        if m == self.n:
            sub_offsets, sub_data = offsets, data
        else:
            sub_offsets, sub_data = _native.gather_strings(offsets, data, _string_indices(rows))
        cap = m if limit is None else min(limit, m)
        encoded = _native.dict_encode(sub_offsets, sub_data, cap)
        if encoded is None:
            return None
        sub_codes, firsts = encoded
        codes = np.full(self.n, -1, dtype=np.int64)
        codes[rows] = sub_codes.astype(np.int64)
        distinct = decode_list(sub_offsets, sub_data, firsts)
        self._codes, self._dict = codes, distinct
        self._dict_unique = True
        self._dict_strings = None  # any earlier one belonged to no dictionary of these codes
        return codes, distinct

    def dictionary_strings(self) -> tuple[Int64Array, bytes]:
        """(offsets, data) of the dictionary's distinct strings, for native kernels."""
        if self._dict_strings is None:
            encoded = [text.encode("utf-8", "surrogatepass") for text in self._dict]
            offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
            self._dict_strings = (offsets, b"".join(encoded))
        return self._dict_strings

    def has_dictionary(self) -> bool:
        return self._codes is not None

    def strings_at(self, rows: npt.NDArray[np.integer[Any]]) -> list[str]:
        """The text of `rows` (each must be a K_STRING row)."""
        idx = np.asarray(rows, dtype=np.int64)
        if self._codes is not None:
            distinct = self._dict
            return [distinct[c] for c in self._codes[idx].tolist()]
        offsets, data = self.dense_strings()
        return decode_list(offsets, data, idx)

    def string_list(self) -> list[str | None]:
        """Every row's text, None for rows that are not strings."""
        out: list[str | None] = [None] * self.n
        rows = np.flatnonzero(self.kind == K_STRING)
        for pos, text in zip(rows.tolist(), self.strings_at(rows), strict=True):
            out[pos] = text
        return out

    # -- arrays and objects --------------------------------------------------------------------

    def objects(self) -> ObjectArray:
        """Per row: the array (list) or object (dict) of K_ARRAY/K_OBJECT rows, in reference
        shape; None in other rows."""
        if self._objects is None:
            objects = np.empty(self.n, dtype=object)
            rows = np.flatnonzero(self.kind >= K_ARRAY)
            if rows.size and self._json_text:
                offsets, data = self.dense_strings()
                for pos, text in zip(rows.tolist(), decode_list(offsets, data, rows), strict=True):
                    objects[pos] = parse_json(text)
            self._objects = objects
        return self._objects

    def row_value(self, row: int) -> Any:
        return self.to_python(np.array([row], dtype=np.int64))[0]


# --- helpers ----------------------------------------------------------------------------------


def _string_indices(rows: Int64Array) -> Int64Array:
    return rows.astype(np.int64, copy=False)


def decode_list(offsets: Int64Array, data: bytes, which: npt.NDArray[np.integer[Any]]) -> list[str]:
    """The texts number `which` of (offsets, data)."""
    idx = np.asarray(which, dtype=np.int64)
    starts = offsets[idx].tolist()
    stops = offsets[idx + 1].tolist()
    if data.isascii():
        text = data.decode("ascii")
        return [text[a:b] for a, b in zip(starts, stops, strict=True)]
    view = memoryview(data)
    return [
        bytes(view[a:b]).decode("utf-8", "surrogatepass")
        for a, b in zip(starts, stops, strict=True)
    ]
