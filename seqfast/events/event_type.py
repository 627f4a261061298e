"""The 32-bit event type of a message template: MurmurHash3 (x86_32, seed 0) of its UTF-8.

Seq gives every event a numeric type derived from its message template (`@EventType`,
`ToEventType(template)`, `$XXXXXXXX` in the API) but does not document the algorithm.  It is
commonly believed to be Murmur3-32; agreement with Seq's own values is unconfirmed, so a
seqfast event type is known to match Seq's only when the client sent `@i`.
"""

from __future__ import annotations

import functools

__all__ = ["murmur3_32", "template_event_type"]


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3's 32-bit variant (x86_32)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


@functools.lru_cache(maxsize=4096)
def template_event_type(template: str) -> int:
    """The event type of a message template (cached: templates repeat)."""
    return murmur3_32(template.encode("utf-8", "surrogatepass"))
