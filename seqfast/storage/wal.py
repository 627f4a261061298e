"""The commit log: an append-only, checksummed, group-committed write-ahead log.

Every committed batch is appended here and fsynced before its writer is acknowledged; recovery
reads the log back so that whatever is not yet in a durable segment can be replayed.  The byte
grammar is specified in `native/FORMAT.md` ("Commit log").

Durability rules the code relies on (each one is what makes recovery's verdicts sound):

* A log file's header is fsynced, and so is the directory entry, before any record is written to
  the file.  So a file with records always has a durable header: a bad header there is damage,
  while a last file no longer than a header is only an interrupted creation.
* A file is fsynced completely before the next file is created.  So only the newest file can end
  in a torn record; a bad record anywhere else is damage.
* A failed fsync is fatal (the kernel may already have dropped the dirty pages it could not
  write, so a second fsync could "succeed" without the data ever reaching the disk): the log
  refuses all further work and the process must reopen it, which re-reads what is on disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import xxhash

from seqfast.errors import CorruptLog, SeqfastError, StoreLocked
from seqfast.storage.layout import fsync_directory

FORMAT_VERSION = 1

# File header: magic, format version, flags (0), file number, xxh3_64 of the first 24 bytes.
FILE_MAGIC = b"SEQFWAL\x00"
_FILE_HEADER = struct.Struct("<8sIIQQ")
FILE_HEADER_SIZE = _FILE_HEADER.size  # 32

# Record header: magic, xxh3_64 checksum, payload length, epoch, lsn; the payload follows.  The
# checksum sits before the fields it covers, so it covers one contiguous run of bytes: from the
# length field to the end of the payload.
RECORD_MAGIC = 0x9E3C51A7
_RECORD_MAGIC_BYTES = struct.pack("<I", RECORD_MAGIC)
_RECORD_HEAD = struct.Struct("<IQ")  # magic, checksum
_RECORD_FIELDS = struct.Struct("<IQQ")  # length, epoch, lsn: the checksummed header fields
_RECORD_HEADER = struct.Struct("<IQIQQ")  # all five, to read a record header in one go
RECORD_HEADER_SIZE = _RECORD_HEADER.size  # 32
_CHECKSUMMED_FROM = _RECORD_HEAD.size  # 12

MAX_PAYLOAD = (1 << 32) - 1
_U64_LIMIT = 1 << 64

_FILE_NAME = re.compile(r"(\d{20})\.log")


def log_file_name(number: int) -> str:
    """The name of log file `number`: 20 zero-padded digits, so names sort like numbers."""
    return f"{number:020d}.log"


@dataclass(frozen=True)
class LogRecord:
    epoch: int
    lsn: int
    payload: bytes


class CommitLogFailed(SeqfastError):
    """A failed fsync (or an I/O failure that leaves the files in doubt) made the log unusable.

    The log refuses all further work; reopening it (normally by restarting the process) recovers
    from what is actually on disk.
    """


@dataclass
class _LogFile:
    number: int
    path: Path
    size: int
    first_lsn: int | None = None
    last_lsn: int | None = None


class CommitLog:
    """An open commit log.  Make one with `CommitLog.open`; all methods are thread-safe."""

    def __init__(
        self,
        directory: Path,
        dir_fd: int,
        segment_bytes: int,
        files: list[_LogFile],
        fd: int,
        last_epoch: int,
        last_lsn: int | None,
    ) -> None:
        self._dir = directory
        self._dir_fd = dir_fd
        self._segment_bytes = segment_bytes
        self._files = files  # oldest first; the last one is being written through `_fd`
        self._fd = fd
        self._last_epoch = last_epoch
        self._last_lsn = last_lsn
        # Positions count record bytes appended since open; a token is the position just after
        # a record.  `_durable` only grows, and everything before it is fsynced.
        self._written = 0
        self._durable = 0
        self._syncing = False  # some thread (a sync leader, a roll or close) is fsyncing
        self._closed = False
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._discard_lock = threading.Lock()

    # ---- opening and recovery -------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, *, segment_bytes: int = 64 << 20
    ) -> tuple[CommitLog, list[LogRecord]]:
        """Open (creating if needed) the log in `directory` and recover it.

        Returns the log, ready for appends, and every valid record in order for replay.  A torn
        tail of the newest file is truncated away; any other damage raises `CorruptLog`.
        Raises `StoreLocked` if the log is already open (in this process or another).
        """
        if segment_bytes < FILE_HEADER_SIZE + RECORD_HEADER_SIZE:
            raise ValueError(
                f"segment_bytes must be at least {FILE_HEADER_SIZE + RECORD_HEADER_SIZE}"
            )
        directory = Path(directory)
        _make_dirs(directory)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                # flock is per open file description: it also stops a second open in this process.
                fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreLocked(f"the commit log in {directory} is already open") from None
            files, records = _recover(directory, dir_fd)
            if files:
                fd = os.open(files[-1].path, os.O_WRONLY | os.O_CLOEXEC)
                # After a process crash the newest file's tail may sit only in the page cache;
                # make it durable before anyone acts on the records returned for replay.
                try:
                    os.fsync(fd)
                except BaseException:
                    os.close(fd)
                    raise
            else:
                fd, first = _create_file(directory, dir_fd, 1)
                files = [first]
        except BaseException:
            os.close(dir_fd)
            raise
        last_epoch = records[-1].epoch if records else 0
        last_lsn = records[-1].lsn if records else None
        return cls(directory, dir_fd, segment_bytes, files, fd, last_epoch, last_lsn), records

    # ---- writing --------------------------------------------------------------------------

    def append(self, epoch: int, lsn: int, payload: bytes) -> int:
        """Write one record without waiting for the disk; returns a token for `sync`.

        `lsn` must exceed every lsn in the log and `epoch` must not be below the last record's
        (ValueError otherwise).  An OSError from the write itself (say, ENOSPC) leaves the log
        as it was before the call, still usable.
        """
        if not 0 <= epoch < _U64_LIMIT or not 0 <= lsn < _U64_LIMIT:
            raise ValueError(f"epoch {epoch} and lsn {lsn} must both fit in an unsigned 64-bit int")
        length = memoryview(payload).nbytes  # bytes, even for a buffer of wider items
        if length > MAX_PAYLOAD:
            raise ValueError(f"a payload of {length} bytes is over the {MAX_PAYLOAD}-byte limit")
        # Hash outside the lock: it is the only per-byte CPU work, and other appenders can write
        # meanwhile.  Streaming the payload into the hash avoids concatenating it to the header.
        fields = _RECORD_FIELDS.pack(length, epoch, lsn)
        hasher = xxhash.xxh3_64(fields)
        hasher.update(payload)
        header = _RECORD_HEAD.pack(RECORD_MAGIC, hasher.intdigest()) + fields
        size = RECORD_HEADER_SIZE + length
        with self._lock:
            self._check_usable()
            if self._last_lsn is not None and lsn <= self._last_lsn:
                raise ValueError(f"lsn {lsn} does not follow the last lsn {self._last_lsn}")
            if epoch < self._last_epoch:
                raise ValueError(
                    f"epoch {epoch} is below the last record's epoch {self._last_epoch}"
                )
            current = self._files[-1]
            if current.size > FILE_HEADER_SIZE and current.size + size > self._segment_bytes:
                self._roll()
                current = self._files[-1]
            try:
                _write_all(self._fd, [header, payload], current.size)
            except OSError:
                self._undo_partial_write(current)
                raise
            current.size += size
            if current.first_lsn is None:
                current.first_lsn = lsn
            current.last_lsn = lsn
            self._last_lsn = lsn
            self._last_epoch = epoch
            self._written += size
            return self._written

    def sync(self, upto: int) -> None:
        """Return once everything up to token `upto` is on disk.

        Group commit: one caller at a time fsyncs, covering everything appended before its
        fsync started; callers arriving meanwhile wait for it and, if their records came too
        late for it, one of them runs the next fsync for all of them.
        """
        with self._cond:
            while True:
                self._check_not_failed()
                if upto <= self._durable:
                    return
                if upto > self._written:
                    raise ValueError(f"token {upto} is beyond the end of the log ({self._written})")
                if not self._syncing:
                    break
                self._cond.wait()
            if self._closed:
                raise ValueError("the commit log is closed")
            self._syncing = True
            target = self._written
            path = self._files[-1].path
            # The fsync runs without the lock, and an append may roll and close `_fd` meanwhile;
            # a duplicate descriptor keeps the file open for us (fsync flushes the file, not the
            # descriptor, so the duplicate is as good as the original).
            try:
                fd = os.dup(self._fd)
            except BaseException:
                self._syncing = False
                self._cond.notify_all()
                raise
        failure: OSError | None = None
        synced = False  # stays False if anything, even a signal, interrupts the fsync
        try:
            try:
                os.fsync(fd)
                synced = True
            finally:
                os.close(fd)
        except OSError as exc:
            failure = exc
        finally:
            with self._cond:
                self._syncing = False
                if failure is not None:
                    self._fail(failure)
                elif synced and target > self._durable:
                    self._durable = target
                self._cond.notify_all()
        if failure is not None:
            raise CommitLogFailed(
                f"fsync of commit log file {path} failed ({failure}); the log refuses further "
                "work: reopen it to recover"
            ) from failure

    def commit(self, epoch: int, lsn: int, payload: bytes) -> None:
        """Append one record and return once it is on disk."""
        self.sync(self.append(epoch, lsn, payload))

    def discard_through(self, lsn: int) -> None:
        """Delete the oldest files whose records all have lsns <= `lsn` (a checkpoint).

        Only a prefix of the files goes (so a gap in file numbers always means damage), and
        never the file being written: when every record of that file is covered too, the log
        first rolls to a new, empty file, so that a store whose whole log is in segments keeps
        no log bytes.  The directory is fsynced after each deletion, so a crash part-way still
        leaves a prefix deleted.
        """
        with self._discard_lock:
            with self._lock:
                self._check_usable()
                current = self._files[-1].last_lsn
                if current is not None and current <= lsn:
                    self._roll()
                doomed: list[_LogFile] = []
                for f in self._files[:-1]:
                    if f.last_lsn is not None and f.last_lsn > lsn:
                        break
                    doomed.append(f)
                del self._files[: len(doomed)]
            for f in doomed:
                os.unlink(f.path)
                self._fsync_dir_or_fail()

    def _roll(self) -> None:
        """Start the next file.  Called with the lock held."""
        old = self._files[-1]
        # The old file must be durable before the new one exists (see the module docstring), so
        # fsync it here, with the lock held; this happens once per `segment_bytes`, and group
        # commit has usually made the fsync cheap already.
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._fail(exc)
            raise CommitLogFailed(
                f"fsync of commit log file {old.path} failed ({exc}); the log refuses further "
                "work: reopen it to recover"
            ) from exc
        if self._written > self._durable:
            self._durable = self._written
            self._cond.notify_all()
        try:
            fd, new = _create_file(self._dir, self._dir_fd, old.number + 1)
        except OSError as exc:
            self._fail(exc)
            raise CommitLogFailed(
                f"could not create commit log file {old.number + 1} in {self._dir} ({exc}); the "
                "log refuses further work: reopen it to recover"
            ) from exc
        old_fd, self._fd = self._fd, fd
        self._files.append(new)
        # The old file is fully on disk, so nothing can be lost if closing it reports an error.
        with contextlib.suppress(OSError):
            os.close(old_fd)

    def _undo_partial_write(self, current: _LogFile) -> None:
        """Cut off whatever part of a failed write reached the file, or fail the log."""
        try:
            os.ftruncate(self._fd, current.size)
        except OSError as exc:
            self._fail(exc)
            raise CommitLogFailed(
                f"could not remove a partly written record from {current.path} ({exc}); the "
                "log refuses further work: reopen it to recover"
            ) from exc

    def _fsync_dir_or_fail(self) -> None:
        try:
            os.fsync(self._dir_fd)
        except OSError as exc:
            with self._lock:
                self._fail(exc)
            raise CommitLogFailed(
                f"fsync of directory {self._dir} failed ({exc}); the log refuses further work: "
                "reopen it to recover"
            ) from exc

    # ---- state ----------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        """Record the first fatal failure and wake every waiter.  Called with the lock held."""
        if self._failure is None:
            self._failure = exc
        self._cond.notify_all()

    def _check_not_failed(self) -> None:
        if self._failure is not None:
            raise CommitLogFailed(
                f"the commit log in {self._dir} failed earlier ({self._failure}) and refuses "
                "further work: reopen it to recover"
            ) from self._failure

    def _check_usable(self) -> None:
        self._check_not_failed()
        if self._closed:
            raise ValueError("the commit log is closed")

    @property
    def last_lsn(self) -> int | None:
        """The lsn of the newest record (recovered or appended), or None if there is none."""
        with self._lock:
            return self._last_lsn

    @property
    def size_bytes(self) -> int:
        """The bytes in the log's files, headers included."""
        with self._lock:
            return sum(f.size for f in self._files)

    def close(self) -> None:
        """Fsync what was appended and close the files.  Idempotent.

        After a failure nothing is fsynced (that could acknowledge lost data); the files are
        just closed.
        """
        with self._discard_lock, self._cond:
            if self._closed:
                return
            self._closed = True
            # Take the fsync role, so that callers of `sync` still waiting for records appended
            # before the close are answered by this fsync rather than refused.
            while self._syncing:
                self._cond.wait()
            self._syncing = True
            target = self._written
            fd, self._fd = self._fd, -1
            do_sync = self._failure is None and target > self._durable
            failure: OSError | None = None
            synced = not do_sync
            try:
                if do_sync:
                    # Under the lock: nothing else can proceed on a closed log anyway.
                    os.fsync(fd)
                    synced = True
            except OSError as exc:
                failure = exc
            finally:
                # Errors from close itself cannot lose data: it was fsynced above, or the log
                # has already failed and promises nothing.
                for descriptor in (fd, self._dir_fd):  # closing the directory drops the flock
                    with contextlib.suppress(OSError):
                        os.close(descriptor)
                self._syncing = False
                if failure is not None:
                    self._fail(failure)
                elif synced and self._failure is None and target > self._durable:
                    self._durable = target
                self._cond.notify_all()
        if failure is not None:
            raise CommitLogFailed(
                f"fsync of commit log file {self._files[-1].path} failed at close ({failure})"
            ) from failure

    def __enter__(self) -> CommitLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- file-level helpers -------------------------------------------------------------------


def _encode_file_header(number: int) -> bytes:
    body = _FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, 0, number, 0)[:24]
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def _file_header_problem(data: bytes, number: int) -> str | None:
    """Why `data` does not start with a valid header for file `number`, or None if it does."""
    if len(data) < FILE_HEADER_SIZE:
        return f"the file header is cut short ({len(data)} of {FILE_HEADER_SIZE} bytes)"
    magic, version, flags, found, checksum = _FILE_HEADER.unpack_from(data)
    if magic != FILE_MAGIC:
        return f"bad file magic {magic!r}"
    if checksum != xxhash.xxh3_64_intdigest(data[:24]):
        return "file header checksum mismatch"
    if version != FORMAT_VERSION:
        return f"format version {version} is not the supported version {FORMAT_VERSION}"
    if flags != 0:
        return f"unknown header flags {flags:#x}"
    if found != number:
        return f"the header says file number {found}, the name says {number}"
    return None


def _write_all(fd: int, buffers: Sequence[bytes | memoryview], offset: int) -> None:
    """Write `buffers` contiguously at `offset`, finishing short writes, without copying them."""
    views = [memoryview(b).cast("B") for b in buffers]  # byte-sized items, so lengths are bytes
    views = [v for v in views if len(v)]
    while views:
        written = os.pwritev(fd, views, offset)
        if written == 0:
            raise OSError(errno.EIO, "write made no progress")
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _create_file(directory: Path, dir_fd: int, number: int) -> tuple[int, _LogFile]:
    """Create log file `number` with a durable header and directory entry; returns (fd, file)."""
    path = directory / log_file_name(number)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, [_encode_file_header(number)], 0)
        os.fsync(fd)
        os.fsync(dir_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, _LogFile(number, path, FILE_HEADER_SIZE)


def _make_dirs(directory: Path) -> None:
    """Create `directory` and missing parents, fsyncing each new entry's parent."""
    missing: list[Path] = []
    d = directory.absolute()
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # someone else made it meanwhile: fine
            d.mkdir()
        fsync_directory(d.parent)


# ---- recovery -----------------------------------------------------------------------------


def _check_record(data: bytes, view: memoryview, offset: int) -> tuple[int, int, int] | str:
    """(epoch, lsn, end) of a valid record at `offset`, or why there is none."""
    available = len(data) - offset
    if available < RECORD_HEADER_SIZE:
        return f"the record header is cut short ({available} of {RECORD_HEADER_SIZE} bytes)"
    magic, checksum, length, epoch, lsn = _RECORD_HEADER.unpack_from(data, offset)
    if magic != RECORD_MAGIC:
        return f"bad record magic {magic:#010x}"
    end = offset + RECORD_HEADER_SIZE + length
    if end > len(data):
        return f"a record of {length} payload bytes runs past the end of the file"
    if xxhash.xxh3_64_intdigest(view[offset + _CHECKSUMMED_FROM : end]) != checksum:
        return "record checksum mismatch"
    return epoch, lsn, end


def _next_valid_record(data: bytes, view: memoryview, start: int) -> int | None:
    """The offset of the first checksum-valid record at or after `start`, if any."""
    pos = data.find(_RECORD_MAGIC_BYTES, start)
    while pos != -1:
        if not isinstance(_check_record(data, view, pos), str):
            return pos
        pos = data.find(_RECORD_MAGIC_BYTES, pos + 1)
    return None


def _recover(directory: Path, dir_fd: int) -> tuple[list[_LogFile], list[LogRecord]]:
    """Verify every log file in order, repair a torn tail, and return the files and records."""
    numbered = sorted(
        (int(m.group(1)), directory / name)
        for name in os.listdir(directory)
        if (m := _FILE_NAME.fullmatch(name))
    )
    files: list[_LogFile] = []
    records: list[LogRecord] = []
    last_epoch = 0
    last_lsn: int | None = None
    for index, (number, path) in enumerate(numbered):
        newest = index == len(numbered) - 1
        if index and number != numbered[index - 1][0] + 1:
            raise CorruptLog(
                str(path), 0, f"the log file before it, {log_file_name(number - 1)}, is missing"
            )
        data = path.read_bytes()
        problem = _file_header_problem(data, number)
        if problem is not None:
            if newest and len(data) <= FILE_HEADER_SIZE:
                # Records are only written after the header is durable, so this file never held
                # one: its creation was interrupted.  Finish it.
                _rewrite_header(path, number, dir_fd)
                files.append(_LogFile(number, path, FILE_HEADER_SIZE))
                continue
            raise CorruptLog(str(path), 0, problem)
        view = memoryview(data)
        log_file = _LogFile(number, path, FILE_HEADER_SIZE)
        offset = FILE_HEADER_SIZE
        while offset < len(data):
            checked = _check_record(data, view, offset)
            if isinstance(checked, str):
                if not newest:
                    raise CorruptLog(
                        str(path), offset, f"{checked} (only the newest file can have a torn tail)"
                    )
                follower = _next_valid_record(data, view, offset + 1)
                if follower is not None:
                    raise CorruptLog(
                        str(path), offset, f"{checked}, yet a valid record follows at {follower}"
                    )
                # A torn tail: the write of the last record(s) did not finish before a crash,
                # and no fsync covered them, so nobody was told they were durable.
                _truncate(path, offset)
                break
            epoch, lsn, end = checked
            if last_lsn is not None and lsn <= last_lsn:
                raise CorruptLog(str(path), offset, f"lsn {lsn} does not follow lsn {last_lsn}")
            if epoch < last_epoch:
                raise CorruptLog(
                    str(path), offset, f"epoch {epoch} is below the previous epoch {last_epoch}"
                )
            records.append(LogRecord(epoch, lsn, data[offset + RECORD_HEADER_SIZE : end]))
            if log_file.first_lsn is None:
                log_file.first_lsn = lsn
            log_file.last_lsn = lsn
            last_epoch, last_lsn = epoch, lsn
            offset = end
        view.release()
        log_file.size = offset
        files.append(log_file)
    return files, records


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rewrite_header(path: Path, number: int, dir_fd: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        _write_all(fd, [_encode_file_header(number)], 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.fsync(dir_fd)
