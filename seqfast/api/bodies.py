"""Request bodies: Content-Encoding decoding under a hard size limit (pure, no I/O).

A compression bomb is cut off as soon as the decoded size passes the limit: decoders are
always asked for at most `limit + 1` bytes, so nothing is ever inflated whole.
"""

from __future__ import annotations

import io
import zlib

import zstandard


class BodyError(Exception):
    """The body cannot be decoded (HTTP 400); the message is a sentence."""


class BodyTooLarge(Exception):
    """The decoded body passes the limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the payload limit of {limit} bytes")
        self.limit = limit


SUPPORTED_ENCODINGS = ("gzip", "x-gzip", "deflate", "zstd", "identity")


def decode_body(body: bytes, content_encoding: str, limit: int) -> bytes:
    """`body` decoded per its Content-Encoding header (a comma list, applied in order)."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    data = body
    # Codings are listed in the order they were applied: undo them from the last.
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, limit, "gzip")
        elif coding == "deflate":
            data = _deflate(data, limit)
        elif coding == "zstd":
            data = _unzstd(data, limit)
        elif coding != "identity":
            raise BodyError(
                f"unsupported Content-Encoding {coding!r} (supported: gzip, deflate, zstd)"
            )
    if len(data) > limit:
        raise BodyTooLarge(limit)
    return data


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyError(f"the {name} body is corrupt ({exc})") from None
    if len(out) > limit:
        raise BodyTooLarge(limit)
    if not decoder.eof:
        raise BodyError(f"the {name} body is truncated")
    if decoder.unused_data.strip(b"\0"):
        raise BodyError(f"the {name} body has data after its end")
    return out


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" is meant to be zlib-wrapped, but many clients send raw deflate: try both.
    try:
        return _inflate(data, zlib.MAX_WBITS, limit, "deflate")
    except BodyError:
        return _inflate(data, -zlib.MAX_WBITS, limit, "deflate")


def _unzstd(data: bytes, limit: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    try:
        out = reader.read(limit + 1)
        if len(out) > limit:
            raise BodyTooLarge(limit)
        # Within the limit: decode again, now known to be bounded, to learn whether the last
        # frame was complete (the stream reader does not tell a truncated frame from an end).
        decoder = zstandard.ZstdDecompressor().decompressobj()
        decoder.decompress(data)
    except zstandard.ZstdError as exc:
        raise BodyError(f"the zstd body is corrupt ({exc})") from None
    if data and not decoder.eof:
        raise BodyError("the zstd body is truncated")
    return out
