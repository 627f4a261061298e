"""The commit log: round trips, crash recovery, damage detection, group commit, fatal fsyncs."""

from __future__ import annotations

import errno
import os
import random
import shutil
import struct
import tempfile
import threading
import time
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seqfast.errors import CorruptLog, StoreLocked
from seqfast.storage.wal import (
    FILE_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    CommitLog,
    CommitLogFailed,
    LogRecord,
)

# ---- an independent encoder, written from native/FORMAT.md ("Commit log") ------------------


def spec_file_header(number: int, *, version: int = 1, flags: int = 0) -> bytes:
    body = b"SEQFWAL\x00" + struct.pack("<IIQ", version, flags, number)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def spec_record(epoch: int, lsn: int, payload: bytes) -> bytes:
    covered = struct.pack("<IQQ", len(payload), epoch, lsn) + payload
    return struct.pack("<IQ", 0x9E3C51A7, xxhash.xxh3_64_intdigest(covered)) + covered


# ---- helpers ------------------------------------------------------------------------------


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def payload(i: int, size: int = 40) -> bytes:
    return (f"record {i};".encode() * size)[:size]


def reopen(directory: Path, **kwargs: int) -> list[LogRecord]:
    log, records = CommitLog.open(directory, **kwargs)
    log.close()
    return records


def write_log(directory: Path, lsns: list[int], *, segment_bytes: int = 1 << 20) -> list[LogRecord]:
    log, _ = CommitLog.open(directory, segment_bytes=segment_bytes)
    with log:
        for lsn in lsns:
            log.commit(1, lsn, payload(lsn))
    return [LogRecord(1, lsn, payload(lsn)) for lsn in lsns]


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def record_size(lsn: int) -> int:
    return RECORD_HEADER_SIZE + len(payload(lsn))


# ---- round trips --------------------------------------------------------------------------


def test_empty_log_creates_its_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "wal"
    log, records = CommitLog.open(directory)
    assert records == []
    assert log.last_lsn is None
    assert log.size_bytes == FILE_HEADER_SIZE
    log.close()
    assert [p.name for p in log_files(directory)] == ["00000000000000000001.log"]
    assert reopen(directory) == []


def test_round_trip_across_reopen(tmp_path: Path) -> None:
    expected = write_log(tmp_path, [1, 2, 5, 9])
    log, records = CommitLog.open(tmp_path)
    assert records == expected
    assert log.last_lsn == 9
    log.commit(2, 10, b"")  # empty payloads are records too
    log.commit(2, 11, b"\x00" * 1000)
    log.close()
    assert reopen(tmp_path) == [
        *expected,
        LogRecord(2, 10, b""),
        LogRecord(2, 11, b"\x00" * 1000),
    ]


def test_round_trip_across_file_rolls(tmp_path: Path) -> None:
    segment_bytes = FILE_HEADER_SIZE + 3 * record_size(1)  # three records a file
    expected = write_log(tmp_path, list(range(1, 11)), segment_bytes=segment_bytes)
    files = log_files(tmp_path)
    assert [p.name for p in files] == [f"{n:020d}.log" for n in range(1, 5)]
    assert all(p.stat().st_size <= segment_bytes for p in files)
    log, records = CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    assert records == expected
    assert log.size_bytes == sum(p.stat().st_size for p in files)
    for lsn in range(11, 15):
        log.commit(1, lsn, payload(lsn))
    log.close()
    assert reopen(tmp_path, segment_bytes=segment_bytes) == [
        LogRecord(1, lsn, payload(lsn)) for lsn in range(1, 15)
    ]


def test_a_record_larger_than_a_file_gets_a_file_of_its_own(tmp_path: Path) -> None:
    log, _ = CommitLog.open(tmp_path, segment_bytes=100)
    log.commit(1, 1, b"a" * 500)
    log.commit(1, 2, b"b" * 500)
    log.commit(1, 3, b"c")
    log.close()
    assert len(log_files(tmp_path)) == 3
    assert [r.payload for r in reopen(tmp_path)] == [b"a" * 500, b"b" * 500, b"c"]


def test_files_follow_the_documented_format(tmp_path: Path) -> None:
    write_log(tmp_path, [3, 4])
    (file,) = log_files(tmp_path)
    expected = spec_file_header(1) + spec_record(1, 3, payload(3)) + spec_record(1, 4, payload(4))
    assert file.read_bytes() == expected

    # And a log written from the spec alone is read back.
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{7:020d}.log").write_bytes(
        spec_file_header(7) + spec_record(0, 0, b"") + spec_record(5, 2**64 - 1, b"max")
    )
    assert reopen(other) == [LogRecord(0, 0, b""), LogRecord(5, 2**64 - 1, b"max")]


def test_append_checks_its_arguments(tmp_path: Path) -> None:
    log, _ = CommitLog.open(tmp_path)
    with log:
        log.append(5, 10, b"x")
        with pytest.raises(ValueError, match="lsn 10 does not follow"):
            log.append(5, 10, b"y")
        with pytest.raises(ValueError, match="lsn 9 does not follow"):
            log.append(5, 9, b"y")
        with pytest.raises(ValueError, match="epoch 4 is below"):
            log.append(4, 11, b"y")
        with pytest.raises(ValueError, match="unsigned 64-bit"):
            log.append(5, 2**64, b"y")
        with pytest.raises(ValueError, match="unsigned 64-bit"):
            log.append(-1, 11, b"y")
        assert log.last_lsn == 10
        with pytest.raises(ValueError, match="beyond the end"):
            log.sync(10**9)
    assert reopen(tmp_path) == [LogRecord(5, 10, b"x")]


def test_closed_log_refuses_work_and_close_is_idempotent(tmp_path: Path) -> None:
    log, _ = CommitLog.open(tmp_path)
    token = log.append(1, 1, b"x")
    log.close()
    log.close()
    log.sync(token)  # already durable: close fsynced it
    with pytest.raises(ValueError, match="closed"):
        log.append(1, 2, b"y")
    with pytest.raises(ValueError, match="closed"):
        log.discard_through(1)
    assert reopen(tmp_path) == [LogRecord(1, 1, b"x")]


def test_a_log_can_be_open_only_once(tmp_path: Path) -> None:
    log, _ = CommitLog.open(tmp_path)
    with pytest.raises(StoreLocked):
        CommitLog.open(tmp_path)
    log.close()
    reopen(tmp_path)


# ---- torn tails ---------------------------------------------------------------------------


def test_torn_last_record_at_every_offset(tmp_path: Path) -> None:
    expected = write_log(tmp_path, [1, 2, 3])
    (file,) = log_files(tmp_path)
    whole = file.read_bytes()
    last_start = len(whole) - record_size(3)
    for cut in range(last_start, len(whole)):
        file.write_bytes(whole[:cut])
        log, records = CommitLog.open(tmp_path)
        assert records == expected[:2], cut
        assert file.stat().st_size == last_start, cut
        assert log.last_lsn == 2
        log.commit(1, 3, b"again")
        log.close()
        assert reopen(tmp_path) == [*expected[:2], LogRecord(1, 3, b"again")], cut


def test_torn_tail_after_file_roll(tmp_path: Path) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    expected = write_log(tmp_path, [1, 2, 3], segment_bytes=segment_bytes)
    newest = log_files(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[: FILE_HEADER_SIZE + 7])
    assert reopen(tmp_path, segment_bytes=segment_bytes) == expected[:2]
    assert newest.stat().st_size == FILE_HEADER_SIZE


@pytest.mark.parametrize(
    "torn",
    [
        b"",
        spec_file_header(3)[:1],
        spec_file_header(3)[:8],
        spec_file_header(3)[:20],
        spec_file_header(3)[:31],
        bytes(FILE_HEADER_SIZE),  # the size reached the disk, the bytes did not
        b"\xff" * 10,
    ],
)
def test_torn_header_of_a_fresh_file(tmp_path: Path, torn: bytes) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    expected = write_log(tmp_path, [1, 2, 3], segment_bytes=segment_bytes)
    fresh = tmp_path / f"{3:020d}.log"  # a crash while the log was creating its third file
    fresh.write_bytes(torn)
    log, records = CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    assert records == expected
    assert fresh.read_bytes() == spec_file_header(3)
    log.commit(1, 4, payload(4))
    log.close()
    assert reopen(tmp_path, segment_bytes=segment_bytes) == [*expected, LogRecord(1, 4, payload(4))]
    assert fresh.stat().st_size > FILE_HEADER_SIZE


def test_torn_header_of_the_very_first_file(tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}.log").write_bytes(spec_file_header(1)[:5])
    log, records = CommitLog.open(tmp_path)
    assert records == []
    log.commit(1, 1, b"first")
    log.close()
    assert reopen(tmp_path) == [LogRecord(1, 1, b"first")]


@pytest.mark.parametrize(
    "tail",
    [
        bytes(1),
        bytes(31),
        bytes(32),
        bytes(4096),
        random.Random(7).randbytes(5000),
        struct.pack("<IQIQQ", 0x9E3C51A7, 12345, 3, 1, 99) + b"abc",  # magic, wrong checksum
        struct.pack("<IQIQQ", 0x9E3C51A7, 0, 0xFFFFFFFF, 1, 99),  # magic, absurd length
    ],
    ids=["zero1", "zero31", "zero32", "zero4096", "random", "bad-checksum", "huge-length"],
)
def test_garbage_tail_is_truncated(tmp_path: Path, tail: bytes) -> None:
    expected = write_log(tmp_path, [1, 2])
    (file,) = log_files(tmp_path)
    size = file.stat().st_size
    with file.open("ab") as f:
        f.write(tail)
    assert reopen(tmp_path) == expected
    assert file.stat().st_size == size


@settings(max_examples=50, deadline=None)
@given(tail=st.binary(min_size=1, max_size=300))
def test_any_garbage_tail_is_truncated(tail: bytes) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        expected = write_log(directory, [1, 2])
        (file,) = log_files(directory)
        with file.open("ab") as f:
            f.write(tail)
        assert reopen(directory) == expected


# ---- damage -------------------------------------------------------------------------------

# Byte offsets inside a record: magic, checksum, length, epoch, lsn, first and last payload byte.
RECORD_FIELD_OFFSETS = [0, 3, 4, 11, 12, 15, 16, 24, 31, 32, RECORD_HEADER_SIZE + 39]


@pytest.mark.parametrize("within", RECORD_FIELD_OFFSETS)
def test_bit_flip_in_a_middle_record_is_corruption(tmp_path: Path, within: int) -> None:
    write_log(tmp_path, [1, 2, 3])
    (file,) = log_files(tmp_path)
    second = FILE_HEADER_SIZE + record_size(1)
    flip_bit(file, second + within, bit=3)
    size = file.stat().st_size
    with pytest.raises(CorruptLog) as caught:
        CommitLog.open(tmp_path)
    assert caught.value.path == str(file)
    assert caught.value.offset == second
    assert str(file) in str(caught.value)
    assert file.stat().st_size == size  # nothing was "repaired"


def test_bit_flip_in_the_very_last_record_looks_like_a_torn_tail(tmp_path: Path) -> None:
    # Nothing after it can tell damage from an unfinished write, so it goes the way of a torn
    # tail: the record was the newest one, and its writer learns of it only if it was synced.
    expected = write_log(tmp_path, [1, 2, 3])
    (file,) = log_files(tmp_path)
    flip_bit(file, file.stat().st_size - 1)
    assert reopen(tmp_path) == expected[:2]


@pytest.mark.parametrize("within", [0, 12, 24, RECORD_HEADER_SIZE + 39])
def test_bit_flip_in_an_earlier_file_is_corruption(tmp_path: Path, within: int) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    write_log(tmp_path, [1, 2, 3, 4, 5], segment_bytes=segment_bytes)
    first = log_files(tmp_path)[0]
    last_record = FILE_HEADER_SIZE + record_size(1)  # the file's final record
    flip_bit(first, last_record + within)
    with pytest.raises(CorruptLog) as caught:
        CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    assert (caught.value.path, caught.value.offset) == (str(first), last_record)


def test_short_earlier_file_is_corruption(tmp_path: Path) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    write_log(tmp_path, [1, 2, 3], segment_bytes=segment_bytes)
    first = log_files(tmp_path)[0]
    first.write_bytes(first.read_bytes()[:-5])
    with pytest.raises(CorruptLog) as caught:
        CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    assert (caught.value.path, caught.value.offset) == (str(first), FILE_HEADER_SIZE + 72)


@pytest.mark.parametrize("within", [0, 7, 8, 12, 16, 24, 31])
@pytest.mark.parametrize("which", [0, -1])
def test_bad_file_header_is_corruption(tmp_path: Path, within: int, which: int) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    write_log(tmp_path, [1, 2, 3], segment_bytes=segment_bytes)
    file = log_files(tmp_path)[which]  # the oldest file, and the newest (it has a record)
    flip_bit(file, within)
    with pytest.raises(CorruptLog) as caught:
        CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    assert (caught.value.path, caught.value.offset) == (str(file), 0)


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (spec_file_header(1, version=2), "format version 2"),
        (spec_file_header(1, flags=1), "flags"),
        (spec_file_header(8), "file number 8"),
        (b"NOTAWAL!" + spec_file_header(1)[8:], "magic"),
    ],
)
def test_well_formed_but_wrong_header_is_corruption(
    tmp_path: Path, header: bytes, detail: str
) -> None:
    (tmp_path / f"{1:020d}.log").write_bytes(header + spec_record(1, 1, b"x"))
    with pytest.raises(CorruptLog, match=detail):
        CommitLog.open(tmp_path)


@pytest.mark.parametrize(
    ("records", "bad", "detail"),
    [
        ([(1, 1), (1, 3), (1, 2)], 2, "lsn 2 does not follow lsn 3"),
        ([(1, 1), (1, 1)], 1, "lsn 1 does not follow lsn 1"),
        ([(2, 1), (1, 2), (2, 3)], 1, "epoch 1 is below"),
    ],
)
def test_records_out_of_order_are_corruption(
    tmp_path: Path, records: list[tuple[int, int]], bad: int, detail: str
) -> None:
    encoded = [spec_record(epoch, lsn, b"p") for epoch, lsn in records]
    file = tmp_path / f"{1:020d}.log"
    file.write_bytes(spec_file_header(1) + b"".join(encoded))
    with pytest.raises(CorruptLog, match=detail) as caught:
        CommitLog.open(tmp_path)
    assert caught.value.offset == FILE_HEADER_SIZE + sum(len(r) for r in encoded[:bad])


def test_lsns_must_increase_across_files(tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}.log").write_bytes(spec_file_header(1) + spec_record(1, 5, b"a"))
    second = tmp_path / f"{2:020d}.log"
    second.write_bytes(spec_file_header(2) + spec_record(1, 5, b"b"))
    with pytest.raises(CorruptLog) as caught:
        CommitLog.open(tmp_path)
    assert (caught.value.path, caught.value.offset) == (str(second), FILE_HEADER_SIZE)


def test_missing_middle_file_is_corruption(tmp_path: Path) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    write_log(tmp_path, list(range(1, 7)), segment_bytes=segment_bytes)
    files = log_files(tmp_path)
    files[1].unlink()
    with pytest.raises(CorruptLog, match="is missing") as caught:
        CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    assert caught.value.path == str(files[2])


def test_other_files_in_the_directory_are_ignored(tmp_path: Path) -> None:
    expected = write_log(tmp_path, [1])
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "1.log").write_text("not a log file name")
    assert reopen(tmp_path) == expected


# ---- writes that fail ---------------------------------------------------------------------


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwritev

    def dribble(fd: int, buffers: list[memoryview], offset: int) -> int:
        return real(fd, [bytes(buffers[0][:7])], offset)

    log, _ = CommitLog.open(tmp_path)
    monkeypatch.setattr(os, "pwritev", dribble)
    log.commit(1, 1, payload(1))
    log.commit(1, 2, payload(2, size=1000))
    monkeypatch.undo()
    log.close()
    assert reopen(tmp_path) == [LogRecord(1, 1, payload(1)), LogRecord(1, 2, payload(2, 1000))]


def test_failed_write_leaves_the_log_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, buffers: list[memoryview], offset: int) -> int:
        os.pwrite(fd, bytes(buffers[0][:10]), offset)  # part of the record reaches the file
        raise OSError(errno.ENOSPC, "No space left on device")

    log, _ = CommitLog.open(tmp_path)
    log.commit(1, 1, b"one")
    (file,) = log_files(tmp_path)
    size = file.stat().st_size
    monkeypatch.setattr(os, "pwritev", disk_full)
    with pytest.raises(OSError, match="No space"):
        log.append(1, 2, b"two")
    monkeypatch.undo()
    assert file.stat().st_size == size  # the partial record was cut off again
    assert log.last_lsn == 1
    log.commit(1, 2, b"two, later")
    log.close()
    assert reopen(tmp_path) == [LogRecord(1, 1, b"one"), LogRecord(1, 2, b"two, later")]


def test_failed_fsync_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = CommitLog.open(tmp_path)
    log.commit(1, 1, b"one")

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    token = log.append(1, 2, b"two")
    with pytest.raises(CommitLogFailed, match="Input/output error"):
        log.sync(token)
    monkeypatch.undo()  # fsync "works" again; the log must still refuse (fsyncgate)
    with pytest.raises(CommitLogFailed, match="reopen"):
        log.sync(token)
    with pytest.raises(CommitLogFailed):
        log.append(1, 3, b"three")
    with pytest.raises(CommitLogFailed):
        log.commit(1, 3, b"three")
    with pytest.raises(CommitLogFailed):
        log.discard_through(1)
    log.close()
    log.close()
    # Reopening reads what is on disk; record 2 was written but never acknowledged.
    assert [r.lsn for r in reopen(tmp_path)] == [1, 2]


def test_failed_fsync_fails_every_waiter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = CommitLog.open(tmp_path)
    entered = threading.Event()
    release = threading.Event()

    def stuck_then_eio(fd: int) -> None:
        entered.set()
        release.wait(10)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", stuck_then_eio)
    outcomes: list[str] = []
    lock = threading.Lock()

    def commit(lsn: int) -> None:
        try:
            with lock:
                token = log.append(1, lsn, b"x")
            if lsn > 1:
                entered.wait(10)
            log.sync(token)
            result = "ok"
        except CommitLogFailed:
            result = "failed"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=commit, args=(lsn,)) for lsn in range(1, 6)]
    threads[0].start()
    assert entered.wait(10)
    for t in threads[1:]:
        t.start()
    time.sleep(0.1)  # let them queue behind the stuck fsync
    release.set()
    for t in threads:
        t.join(10)
    assert outcomes == ["failed"] * 5
    monkeypatch.undo()
    log.close()


def test_failed_fsync_while_rolling_is_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = CommitLog.open(tmp_path, segment_bytes=FILE_HEADER_SIZE + record_size(1))
    log.append(1, 1, payload(1))

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(CommitLogFailed):
        log.append(1, 2, payload(2))
    monkeypatch.undo()
    with pytest.raises(CommitLogFailed):
        log.append(1, 2, payload(2))
    log.close()
    assert [r.lsn for r in reopen(tmp_path)] == [1]


def test_failed_fsync_at_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = CommitLog.open(tmp_path)
    log.append(1, 1, b"x")

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(CommitLogFailed):
        log.close()
    log.close()
    monkeypatch.undo()
    CommitLog.open(tmp_path)[0].close()  # the directory lock was released


# ---- group commit -------------------------------------------------------------------------


def test_group_commit_shares_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads_n, per_thread = 8, 50
    log, _ = CommitLog.open(tmp_path)
    (file,) = log_files(tmp_path)
    real = os.fsync
    lock = threading.Lock()
    fsyncs = 0
    covered = FILE_HEADER_SIZE  # the file size when the latest finished fsync started

    def slow_fsync(fd: int) -> None:
        # A slow disk, so that commits really overlap an fsync in flight.
        nonlocal fsyncs, covered
        started_at = os.fstat(fd).st_size
        time.sleep(0.002)
        real(fd)
        with lock:
            fsyncs += 1
            covered = max(covered, started_at)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    lsns = iter(range(1, threads_n * per_thread + 1))
    early_returns: list[int] = []

    def worker(t: int) -> None:
        for i in range(per_thread):
            with lock:  # lsns must reach the log in order
                lsn = next(lsns)
                token = log.append(1, lsn, f"{t}:{i}".encode() * 100)
            log.sync(token)
            with lock:
                # A fresh log's only file: the token plus the header is the record's end.
                if covered < FILE_HEADER_SIZE + token:
                    early_returns.append(lsn)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert early_returns == []
    commits = threads_n * per_thread
    assert fsyncs < commits / 2, (fsyncs, commits)
    log.close()
    records = reopen(tmp_path)
    assert [r.lsn for r in records] == list(range(1, commits + 1))
    assert {r.payload for r in records} == {
        f"{t}:{i}".encode() * 100 for t in range(threads_n) for i in range(per_thread)
    }
    assert file.exists()


def test_concurrent_commits_across_rolls(tmp_path: Path) -> None:
    segment_bytes = 4096
    log, _ = CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    lock = threading.Lock()
    lsns = iter(range(1, 401))

    def worker() -> None:
        for _ in range(50):
            with lock:
                lsn = next(lsns)
                token = log.append(1, lsn, payload(lsn, 300))
            log.sync(token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(log_files(tmp_path)) > 10
    assert reopen(tmp_path) == [LogRecord(1, lsn, payload(lsn, 300)) for lsn in range(1, 401)]


def fsync_spy(monkeypatch: pytest.MonkeyPatch, directory: Path) -> list[str]:
    """Record, by name, what each os.fsync call flushes: a log file, or "dir" for `directory`."""
    real = os.fsync
    seen: list[str] = []

    def spy(fd: int) -> None:
        inode = os.fstat(fd).st_ino
        if inode == directory.stat().st_ino:
            seen.append("dir")
        else:
            seen.extend(
                p.stem.lstrip("0") for p in log_files(directory) if p.stat().st_ino == inode
            )
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_rolling_makes_the_old_file_durable_before_the_new_one_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = CommitLog.open(tmp_path, segment_bytes=FILE_HEADER_SIZE + record_size(1))
    first = log.append(1, 1, payload(1))
    seen = fsync_spy(monkeypatch, tmp_path)
    second = log.append(1, 2, payload(2))
    assert seen == ["1", "2", "dir"]  # old file; new file's header; its directory entry
    log.sync(first)  # the roll already covered it
    assert seen == ["1", "2", "dir"]
    log.sync(second)
    assert seen == ["1", "2", "dir", "2"]
    log.close()


def test_opening_makes_the_recovered_tail_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = CommitLog.open(tmp_path)
    log.append(1, 1, b"only in the page cache after a process crash")
    log.close()
    seen = fsync_spy(monkeypatch, tmp_path)
    log, _ = CommitLog.open(tmp_path)
    assert seen == ["1"]
    log.close()


# ---- checkpoints --------------------------------------------------------------------------


def test_discard_through_deletes_only_fully_covered_files(tmp_path: Path) -> None:
    segment_bytes = FILE_HEADER_SIZE + 2 * record_size(1)
    write_log(tmp_path, list(range(1, 11)), segment_bytes=segment_bytes)  # 5 files of 2
    log, _ = CommitLog.open(tmp_path, segment_bytes=segment_bytes)

    def numbers() -> list[int]:
        return [int(p.stem) for p in log_files(tmp_path)]

    log.discard_through(0)
    assert numbers() == [1, 2, 3, 4, 5]
    log.discard_through(3)  # file 2 holds 3 and 4
    assert numbers() == [2, 3, 4, 5]
    log.discard_through(4)
    assert numbers() == [3, 4, 5]
    assert log.size_bytes == sum(p.stat().st_size for p in log_files(tmp_path))
    log.discard_through(9)  # file 5 holds 9 and 10: it is being written, so it stays
    assert numbers() == [5]
    log.discard_through(100)  # everything covered: roll to an empty file, delete the rest
    assert numbers() == [6]
    assert log.size_bytes == FILE_HEADER_SIZE
    assert log.last_lsn == 10
    log.commit(1, 11, payload(11))
    log.close()
    assert [r.lsn for r in reopen(tmp_path, segment_bytes=segment_bytes)] == [11]


def test_discard_through_fsyncs_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segment_bytes = FILE_HEADER_SIZE + record_size(1)
    write_log(tmp_path, [1, 2, 3], segment_bytes=segment_bytes)
    log, _ = CommitLog.open(tmp_path, segment_bytes=segment_bytes)
    real = os.fsync
    synced_dirs: list[bool] = []

    def spy(fd: int) -> None:
        synced_dirs.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    log.discard_through(2)
    monkeypatch.undo()
    assert synced_dirs == [True, True]  # one per deleted file, in order
    log.close()


# ---- random histories against a model -----------------------------------------------------


class LogMachine(RuleBasedStateMachine):
    """Appends, syncs, checkpoints, torn tails and reopens, checked against a list of records."""

    SEGMENT_BYTES = 300

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="wal-"))
        self.log, records = CommitLog.open(self.directory, segment_bytes=self.SEGMENT_BYTES)
        assert records == []
        # The records a reopen may return.  After a checkpoint, records at or below
        # `discarded` may be gone, but only as a prefix.
        self.model: list[LogRecord] = []
        self.discarded = -1
        self.high_lsn = 0
        self.epoch = 0
        self.tokens: list[int] = []

    @rule(
        gap=st.integers(1, 3),
        new_epoch=st.booleans(),
        data=st.binary(max_size=120),
        sync=st.booleans(),
    )
    def append(self, gap: int, new_epoch: bool, data: bytes, sync: bool) -> None:
        self.high_lsn += gap
        self.epoch += new_epoch
        token = self.log.append(self.epoch, self.high_lsn, data)
        if sync:
            self.log.sync(token)
        self.tokens.append(token)
        self.model.append(LogRecord(self.epoch, self.high_lsn, data))

    @precondition(lambda self: self.tokens)
    @rule(pick=st.integers(0, 1000))
    def sync(self, pick: int) -> None:
        self.log.sync(self.tokens[pick % len(self.tokens)])

    @rule(lsn=st.integers(0, 200))
    def discard_through(self, lsn: int) -> None:
        self.log.discard_through(lsn)
        self.discarded = max(self.discarded, lsn)

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self._open_and_compare()

    @rule(data=st.data())
    def tear_last_record(self, data: st.DataObject) -> None:
        """A crash in the middle of writing the newest record."""
        self.log.close()
        newest = log_files(self.directory)[-1]
        size = newest.stat().st_size
        if self.model:
            last = RECORD_HEADER_SIZE + len(self.model[-1].payload)
            if size - FILE_HEADER_SIZE >= last:  # the newest record is in the newest file
                cut = data.draw(st.integers(size - last, size - 1))
                newest.write_bytes(newest.read_bytes()[:cut])
                self.model.pop()
        self._open_and_compare()

    def _open_and_compare(self) -> None:
        self.log, records = CommitLog.open(self.directory, segment_bytes=self.SEGMENT_BYTES)
        self.tokens = []
        kept = self.model[len(self.model) - len(records) :] if records else []
        assert records == kept
        lost = self.model[: len(self.model) - len(records)]
        assert all(r.lsn <= self.discarded for r in lost)
        self.model = records

    @invariant()
    def last_lsn_matches(self) -> None:
        assert self.log.last_lsn == (self.model[-1].lsn if self.model else None)

    @invariant()
    def size_matches_the_files(self) -> None:
        assert self.log.size_bytes == sum(p.stat().st_size for p in log_files(self.directory))

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.directory)


LogMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_log_against_model = LogMachine.TestCase
