"""The exceptions seqfast raises to its callers; each message is a complete sentence."""

from __future__ import annotations


class SeqfastError(Exception):
    """Base class of every error seqfast raises on purpose."""


class InvalidEvents(SeqfastError, ValueError):
    """A batch was rejected whole: nothing of it was stored.

    `line` is the 1-based number of the first bad line (CLEF) or event (iterables), and
    `reason` says what is wrong with it.
    """

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class CorruptSegment(SeqfastError):
    """A segment file failed a structural or checksum check; other segments stay readable."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"corrupt segment {path}: {detail}")
        self.path = path
        self.detail = detail


class CorruptLog(SeqfastError):
    """The commit log is damaged somewhere other than a torn tail; the store refuses to open."""

    def __init__(self, path: str, offset: int, detail: str) -> None:
        super().__init__(f"corrupt commit log {path} at offset {offset}: {detail}")
        self.path = path
        self.offset = offset
        self.detail = detail


class CommitRefused(SeqfastError):
    """A commit's guard said no before anything was written (in a cluster: this node no longer
    leads), so nothing of the batch was stored."""


class StoreLocked(SeqfastError):
    """Another process holds the data directory open."""
