"""Pure-Python reference versions of the native segment codecs (native/codecs.pyx, bloom.pyx,
hashing.pyx), written for obviousness rather than speed.

Each function follows native/FORMAT.md ("Segment file") directly and works on plain Python
ints, bytes and lists; tests check that the native functions agree with these on arbitrary
inputs.  Integers are unsigned 64-bit unless a name says otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1

# --- integers ---------------------------------------------------------------------------------


def to_signed(x: int) -> int:
    """The int64 whose two's-complement bits are the uint64 `x`."""
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


def zigzag(x: int) -> int:
    """int64 -> uint64: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ..."""
    return 2 * x if x >= 0 else -2 * x - 1


def unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def delta_encode(values: Sequence[int]) -> tuple[int, list[int]]:
    """(values[0], differences of neighbours); the values must not decrease."""
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError("values decrease")
    base = values[0] if values else 0
    return base, [b - a for a, b in itertools.pairwise(values)]


def delta_decode(base: int, deltas: Sequence[int]) -> list[int]:
    out = [base]
    for d in deltas:
        out.append(to_signed(out[-1] + d))
    return out


def zigzag_delta_encode(values: Sequence[int]) -> tuple[int, list[int]]:
    """(values[0], zigzag of each difference taken modulo 2**64 as an int64)."""
    base = values[0] if values else 0
    return base, [zigzag(to_signed(b - a)) for a, b in itertools.pairwise(values)]


def zigzag_delta_decode(base: int, deltas: Sequence[int]) -> list[int]:
    out = [base]
    for z in deltas:
        out.append(to_signed(out[-1] + unzigzag(z)))
    return out


def for_encode(values: Sequence[int]) -> tuple[int, list[int]]:
    """Frame of reference: (min, value - min for each value)."""
    base = min(values) if values else 0
    return base, [v - base for v in values]


def for_decode(base: int, offsets: Sequence[int]) -> list[int]:
    return [to_signed(base + o) for o in offsets]


def narrow(values: Sequence[int]) -> tuple[int, bytes]:
    """(width, bytes): each value little-endian in the smallest of 1, 2, 4, 8 bytes that
    holds the largest one (1 when there are none)."""
    top = max(values, default=0)
    width = next(w for w in (1, 2, 4, 8) if top < 1 << (8 * w))
    return width, b"".join(v.to_bytes(width, "little") for v in values)


def widen(packed: bytes, width: int, count: int) -> list[int]:
    if width not in (1, 2, 4, 8) or len(packed) != width * count:
        raise ValueError("bad width or length")
    return [int.from_bytes(packed[i : i + width], "little") for i in range(0, len(packed), width)]


# --- strings ----------------------------------------------------------------------------------


def dict_encode(strings: Sequence[bytes], max_distinct: int) -> tuple[list[int], list[int]] | None:
    """(codes, firsts) numbering distinct strings by first appearance, or None when there are
    more than `max_distinct` of them."""
    code_of: dict[bytes, int] = {}
    firsts: list[int] = []
    codes: list[int] = []
    for i, s in enumerate(strings):
        if s not in code_of:
            if len(code_of) == max_distinct:
                return None
            code_of[s] = len(code_of)
            firsts.append(i)
        codes.append(code_of[s])
    return codes, firsts


def gather_strings(strings: Sequence[bytes], indices: Sequence[int]) -> list[bytes]:
    if any(not 0 <= i < len(strings) for i in indices):
        raise ValueError("index out of range")
    return [strings[i] for i in indices]


_HEX_DIGITS = frozenset(b"0123456789abcdef")


def hex_length(strings: Sequence[bytes]) -> int:
    """L when every string is lowercase hex of one even length L >= 2, else -1."""
    if not strings:
        return -1
    length = len(strings[0])
    if length < 2 or length % 2:
        return -1
    if all(len(s) == length and set(s) <= _HEX_DIGITS for s in strings):
        return length
    return -1


def hex_pack(text: bytes) -> bytes:
    if len(text) % 2 or not set(text) <= _HEX_DIGITS:
        raise ValueError("not lowercase hex")
    return bytes.fromhex(text.decode("ascii"))


def hex_unpack(raw: bytes) -> bytes:
    return raw.hex().encode("ascii")


# --- tokens, hashing, bloom filters -----------------------------------------------------------

SEED = 0x243F6A8885A308D3
MUL1 = 0x9E3779B97F4A7C15
MUL2 = 0xC2B2AE3D27D4EB4F
FIN1 = 0xFF51AFD7ED558CCD
FIN2 = 0xC4CEB9FE1A85EC53


def hash64(data: bytes) -> int:
    """sqhash64 (native/FORMAT.md)."""
    h = SEED
    for i in range(0, len(data), 8):
        word = int.from_bytes(data[i : i + 8].ljust(8, b"\0"), "little")
        h ^= word * MUL1 & MASK64
        h = ((h << 27) | (h >> 37)) & MASK64
        h = h * MUL2 & MASK64
    h ^= len(data)
    h ^= h >> 33
    h = h * FIN1 & MASK64
    h ^= h >> 33
    h = h * FIN2 & MASK64
    h ^= h >> 33
    return h


def is_token_byte(c: int) -> bool:
    return (chr(c).isascii() and chr(c).isalnum()) or c >= 0x80


def tokenize(text: bytes) -> list[bytes]:
    """The maximal runs of token bytes (ASCII letters and digits, bytes >= 0x80), with ASCII
    letters lowercased."""
    tokens: list[bytes] = []
    current = bytearray()
    for c in text:
        if is_token_byte(c):
            current.append(c + 32 if 65 <= c <= 90 else c)
        elif current:
            tokens.append(bytes(current))
            current.clear()
    if current:
        tokens.append(bytes(current))
    return tokens


def token_hashes(strings: Sequence[bytes]) -> list[int]:
    """The distinct hashes of the tokens of all strings, ascending."""
    return sorted({hash64(t) for s in strings for t in tokenize(s)})


def bloom_bits(h: int, nbits: int, k: int) -> list[int]:
    """The k bit positions of hash h in a filter of nbits bits."""
    lo, hi = h & MASK32, h >> 32
    return [(((lo + i * hi) & MASK32) * nbits) >> 32 for i in range(k)]


def bloom_build(hashes: Sequence[int], nbits: int, k: int) -> bytes:
    bits = bytearray(nbits // 8)
    for h in hashes:
        for b in bloom_bits(h, nbits, k):
            bits[b // 8] |= 1 << (b % 8)
    return bytes(bits)


def bloom_contains_all(bits: bytes, k: int, hashes: Sequence[int]) -> bool:
    nbits = 8 * len(bits)
    return all(bits[b // 8] >> (b % 8) & 1 for h in hashes for b in bloom_bits(h, nbits, k))
