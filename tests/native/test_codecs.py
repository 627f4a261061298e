"""The native segment codecs agree with the pure-Python references on arbitrary inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqfast import _native
from seqfast.testing import reference as ref

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
int64s = st.integers(INT64_MIN, INT64_MAX)
uint64s = st.integers(0, 2**64 - 1)
# Values near the narrowing boundaries as well as anywhere.
boundary_uint64s = st.one_of(
    uint64s,
    st.sampled_from([0, 1, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]),
)
strings = st.binary(max_size=40) | st.text(max_size=20).map(lambda s: s.encode())
hex_texts = st.integers(1, 20).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).map(lambda b: b.hex().encode())
)


def i64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def u64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def as_list(strs: list[bytes]) -> tuple[np.ndarray, bytes]:
    offsets = np.zeros(len(strs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strs], out=offsets[1:])
    return offsets, b"".join(strs)


def from_list(offsets: np.ndarray, data: bytes) -> list[bytes]:
    o = offsets.tolist()
    return [data[o[i] : o[i + 1]] for i in range(len(o) - 1)]


# --- integers ---------------------------------------------------------------------------------


@given(st.lists(int64s, max_size=50).map(sorted))
def test_delta_matches_reference(values: list[int]) -> None:
    base, deltas = _native.delta_encode(i64(values))
    assert (base, deltas.tolist()) == ref.delta_encode(values)
    assert _native.delta_decode(base, deltas).tolist() == (values or [0])


@pytest.mark.parametrize(
    "values", [[], [7], [INT64_MIN, INT64_MAX], [INT64_MIN, INT64_MIN], [-1, 0, 0, 1]]
)
def test_delta_edges(values: list[int]) -> None:
    base, deltas = _native.delta_encode(i64(values))
    assert _native.delta_decode(base, deltas).tolist() == (values or [0])


def test_delta_rejects_decreasing_values() -> None:
    with pytest.raises(ValueError, match="decrease at index 2"):
        _native.delta_encode(i64([1, 2, 1]))


@given(st.lists(int64s, max_size=50))
def test_zigzag_delta_matches_reference(values: list[int]) -> None:
    base, deltas = _native.zigzag_delta_encode(i64(values))
    assert (base, deltas.tolist()) == ref.zigzag_delta_encode(values)
    assert _native.zigzag_delta_decode(base, deltas).tolist() == (values or [0])
    assert ref.zigzag_delta_decode(*ref.zigzag_delta_encode(values)) == (values or [0])


@pytest.mark.parametrize("x", [0, -1, 1, INT64_MIN, INT64_MAX])
def test_zigzag_reference_round_trips(x: int) -> None:
    assert ref.unzigzag(ref.zigzag(x)) == x
    assert 0 <= ref.zigzag(x) < 2**64


@given(st.lists(int64s, max_size=50))
def test_frame_of_reference_matches_reference(values: list[int]) -> None:
    base, offsets = _native.for_encode(i64(values))
    assert (base, offsets.tolist()) == ref.for_encode(values)
    assert _native.for_decode(base, offsets).tolist() == values


@given(st.lists(boundary_uint64s, max_size=50))
def test_narrow_matches_reference(values: list[int]) -> None:
    packed = _native.narrow(u64(values))
    width, expected = ref.narrow(values)
    assert packed.itemsize == width
    assert packed.tobytes() == expected
    assert _native.widen(expected, width, len(values)).tolist() == values
    assert ref.widen(expected, width, len(values)) == values


@pytest.mark.parametrize(
    ("packed", "width", "count"), [(b"\0", 3, 1), (b"\0\0\0", 2, 2), (b"", 1, -1), (b"\0", 8, 1)]
)
def test_widen_rejects_inconsistent_lengths(packed: bytes, width: int, count: int) -> None:
    with pytest.raises(ValueError):
        _native.widen(packed, width, count)


# --- strings ----------------------------------------------------------------------------------


@given(st.lists(strings, max_size=30), st.integers(0, 40))
def test_dict_encode_matches_reference(strs: list[bytes], max_distinct: int) -> None:
    got = _native.dict_encode(*as_list(strs), max_distinct)
    want = ref.dict_encode(strs, max_distinct)
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (got[0].tolist(), got[1].tolist()) == want


def test_dict_encode_handles_many_distinct_values() -> None:
    strs = [str(i % 5000).encode() for i in range(20000)]
    got = _native.dict_encode(*as_list(strs), 5000)
    assert got is not None
    assert (got[0].tolist(), got[1].tolist()) == ref.dict_encode(strs, 5000)
    assert _native.dict_encode(*as_list(strs), 4999) is None


@given(st.lists(strings, max_size=20), st.data())
def test_gather_matches_reference(strs: list[bytes], data: st.DataObject) -> None:
    indices = data.draw(st.lists(st.integers(0, max(len(strs) - 1, 0)), max_size=30))
    if not strs:
        indices = []
    offsets, blob = _native.gather_strings(*as_list(strs), i64(indices))
    assert offsets[0] == 0
    assert from_list(offsets, blob) == ref.gather_strings(strs, indices)


@pytest.mark.parametrize("index", [-1, 3, INT64_MAX, INT64_MIN])
def test_gather_rejects_out_of_range_indices(index: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        _native.gather_strings(*as_list([b"a", b"b", b"c"]), i64([0, index]))


@pytest.mark.parametrize(
    "offsets", [[], [0, 5], [0, 2, 1], [-1, 0], [1, 0]], ids=["empty", "past", "down", "neg", "dec"]
)
def test_unsound_offsets_raise(offsets: list[int]) -> None:
    data = b"abcd"
    for call in (
        lambda: _native.gather_strings(i64(offsets), data, i64([])),
        lambda: _native.dict_encode(i64(offsets), data, 10),
        lambda: _native.hex_length(i64(offsets), data),
        lambda: _native.token_hashes(i64(offsets), data),
    ):
        with pytest.raises(ValueError):
            call()


@given(st.lists(hex_texts | strings, max_size=10))
def test_hex_length_matches_reference(strs: list[bytes]) -> None:
    assert _native.hex_length(*as_list(strs)) == ref.hex_length(strs)


@given(
    st.lists(st.sampled_from([4, 16, 32]), min_size=1, max_size=1).flatmap(
        lambda w: st.lists(
            st.binary(min_size=w[0] // 2, max_size=w[0] // 2).map(lambda b: b.hex().encode()),
            min_size=1,
            max_size=10,
        )
    )
)
def test_hex_ids_are_detected(strs: list[bytes]) -> None:
    assert _native.hex_length(*as_list(strs)) == len(strs[0])


@pytest.mark.parametrize(
    ("strs", "expected"),
    [
        ([b"ab", b"cd"], 2),
        ([b"AB"], -1),  # uppercase would not come back as it was
        ([b"a"], -1),
        ([b""], -1),
        ([b"ab", b"abcd"], -1),
        ([b"0g"], -1),
        ([], -1),
    ],
)
def test_hex_length_edges(strs: list[bytes], expected: int) -> None:
    assert _native.hex_length(*as_list(strs)) == expected


@given(hex_texts | st.just(b""))
def test_hex_pack_matches_reference(text: bytes) -> None:
    packed = _native.hex_pack(text)
    assert packed == ref.hex_pack(text)
    assert _native.hex_unpack(packed) == text == ref.hex_unpack(packed)


@pytest.mark.parametrize("text", [b"a", b"AB", b"0x", b"g0"])
def test_hex_pack_rejects_other_text(text: bytes) -> None:
    with pytest.raises(ValueError):
        _native.hex_pack(text)


# --- hashing, tokens, bloom filters -----------------------------------------------------------


@given(st.binary(max_size=100))
def test_hash_matches_reference(data: bytes) -> None:
    assert _native.hash64(data) == ref.hash64(data)


def test_hash_pinned_values() -> None:
    # sqhash64 is part of the on-disk format (native/FORMAT.md lists these same values).
    assert _native.hash64(b"") == 0x7ACDBB98B1344213
    assert _native.hash64(b"hello") == 0x7EB4E12B6CB8A241
    assert _native.hash64(b"0123456789abcdef0") == 0x3D4DB4BF447553B9


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        (b"", []),
        (b"Hello, World!", [b"hello", b"world"]),
        (b"GET /api/v1/orders?id=42", [b"get", b"api", b"v1", b"orders", b"id", b"42"]),
        (b"snake_case-and.dots", [b"snake", b"case", b"and", b"dots"]),
        ("Grüße aus Köln".encode(), ["grüße".encode(), b"aus", "köln".encode()]),
        ("ÄÖ".encode(), ["ÄÖ".encode()]),  # only ASCII letters are lowercased
        (b"  \t\n", []),
        (b"x", [b"x"]),
    ],
)
def test_tokenizer_reference(text: bytes, tokens: list[bytes]) -> None:
    assert ref.tokenize(text) == tokens


@given(st.lists(strings, max_size=10))
def test_token_hashes_match_reference(strs: list[bytes]) -> None:
    assert _native.token_hashes(*as_list(strs)).tolist() == ref.token_hashes(strs)


def test_tokens_do_not_span_strings() -> None:
    assert _native.token_hashes(*as_list([b"ab", b"cd"])).tolist() == ref.token_hashes(
        [b"ab", b"cd"]
    )
    assert ref.hash64(b"abcd") not in _native.token_hashes(*as_list([b"ab", b"cd"])).tolist()


def test_token_hashes_of_many_tokens() -> None:
    # Enough distinct tokens to grow the native hash set several times.
    strs = [f"token{i} Shared {i % 7}".encode() for i in range(20000)]
    assert _native.token_hashes(*as_list(strs)).tolist() == ref.token_hashes(strs)


@given(
    st.lists(uint64s, max_size=40),
    st.integers(1, 64).map(lambda w: 64 * w),
    st.integers(1, 16),
)
def test_bloom_matches_reference(hashes: list[int], nbits: int, k: int) -> None:
    bits = _native.bloom_build(u64(hashes), nbits, k)
    assert bits == ref.bloom_build(hashes, nbits, k)
    for h in hashes:
        assert _native.bloom_contains_all(bits, k, u64([h]))
    assert _native.bloom_contains_all(bits, k, u64(hashes))
    probe = u64([0x0123456789ABCDEF])
    assert _native.bloom_contains_all(bits, k, probe) == ref.bloom_contains_all(
        bits, k, probe.tolist()
    )


def test_bloom_false_positive_rate_is_low() -> None:
    hashes = _native.token_hashes(*as_list([f"t{i}".encode() for i in range(10000)]))
    bits = _native.bloom_build(hashes, 100032, 7)
    others = _native.token_hashes(*as_list([f"u{i}".encode() for i in range(10000)]))
    false = sum(_native.bloom_contains_all(bits, 7, others[i : i + 1]) for i in range(10000))
    assert false < 300  # ~0.8 % expected at 10 bits per token and 7 probes


@pytest.mark.parametrize(("nbits", "k"), [(0, 1), (63, 1), (100, 1), (64, 0), (64, 33)])
def test_bloom_rejects_bad_shapes(nbits: int, k: int) -> None:
    with pytest.raises(ValueError):
        _native.bloom_build(u64([1]), nbits, k)


def test_bloom_probe_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        _native.bloom_contains_all(b"\0" * 7, 1, u64([1]))
    with pytest.raises(ValueError):
        _native.bloom_contains_all(b"\0" * 8, 0, u64([1]))


def test_empty_bloom_contains_nothing_and_no_hashes_is_everything() -> None:
    bits = _native.bloom_build(u64([]), 64, 3)
    assert not _native.bloom_contains_all(bits, 3, u64([5]))
    assert _native.bloom_contains_all(bits, 3, u64([]))
