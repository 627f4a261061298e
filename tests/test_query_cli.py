"""`seqfast search` and `seqfast query` as a user runs them: real processes over a data
directory, output on stdout, errors (with a caret) on stderr and exit status 2."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import orjson
import pytest

import seqfast

EVENTS = [
    {"@t": "2024-05-01T12:00:00Z", "@mt": "GET {Path} answered {Status}", "Path": "/a",
     "Status": 200},
    {"@t": "2024-05-01T12:00:30Z", "@mt": "GET {Path} answered {Status}", "Path": "/b",
     "Status": 500, "@l": "Error", "@x": "System.Exception: boom\n   at Handler()"},
    {"@t": "2024-05-01T12:01:00Z", "@mt": "GET {Path} answered {Status}", "Path": "/a",
     "Status": 404, "@l": "Warning"},
]  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seqfast", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("query-cli") / "data"
    with seqfast.open(path) as store:
        store.ingest(EVENTS)
    return str(path)


def test_search_prints_a_table_newest_first(data: str) -> None:
    done = run("search", "--data", data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        '2024-05-01T12:01:00.0000000Z [WRN] GET "/a" answered 404',
        '2024-05-01T12:00:30.0000000Z [ERR] GET "/b" answered 500',
        "System.Exception: boom",
        "   at Handler()",
        '2024-05-01T12:00:00.0000000Z [INF] GET "/a" answered 200',
    ]


def test_search_with_a_filter_range_and_count(data: str) -> None:
    done = run("search", "Path = '/a'", "--data", data, "--format", "json")
    assert [orjson.loads(line)["Status"] for line in done.stdout.splitlines()] == [404, 200]
    done = run("search", "--data", data, "--count", "1", "--format", "json")
    assert [orjson.loads(line)["Status"] for line in done.stdout.splitlines()] == [404]
    done = run(
        "search",
        "--data",
        data,
        "--from",
        "2024-05-01T12:00:30Z",
        "--to",
        "2024-05-01T12:01:00Z",
        "--format",
        "json",
    )
    assert [orjson.loads(line)["Status"] for line in done.stdout.splitlines()] == [500]


def test_search_as_csv(data: str) -> None:
    done = run("search", "Status >= 400", "--data", data, "--format", "csv")
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["Id", "Timestamp", "Level", "Message", "Exception"]
    assert [r[3] for r in rows[1:]] == ['GET "/a" answered 404', 'GET "/b" answered 500']
    assert rows[2][4] == "System.Exception: boom\n   at Handler()"


def test_query_as_table_json_and_csv(data: str) -> None:
    sql = "select count(*) as n from stream group by Path order by Path"
    table = run("query", sql, "--data", data)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == ["Path  n", "----  -", "/a    2", "/b    1"]
    as_json = orjson.loads(run("query", sql, "--data", data, "--format", "json").stdout)
    assert as_json == {"Columns": ["Path", "n"], "Rows": [["/a", 2], ["/b", 1]]}
    as_csv = run("query", sql, "--data", data, "--format", "csv").stdout
    assert as_csv.splitlines() == ["Path,n", "/a,2", "/b,1"]


def test_time_grouped_query(data: str) -> None:
    done = run(
        "query",
        "select count(*) as n from stream group by time(1m)",
        "--data",
        data,
        "--from",
        "2024-05-01T12:00:00Z",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    assert [(s["Time"][:16], s["Rows"][0][-1]) for s in body["Slices"]] == [
        ("2024-05-01T12:00", 2),
        ("2024-05-01T12:01", 1),
    ]


def test_a_bad_filter_exits_2_with_a_caret(data: str) -> None:
    done = run("search", "Status == 500", "--data", data)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert "==" in lines[0]
    assert lines[-2:] == ["Status == 500", "       ^"]


def test_a_bad_query_exits_2_with_a_caret(data: str) -> None:
    done = run("query", "select count(* from stream", "--data", data)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-2:] == ["select count(* from stream", "             ^"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("search", "--from", "yesterday"), ["--from", "yesterday"]),
        (("query", "select count(*) from stream", "--to", "later"), ["--to", "later"]),
        (("search", "--after", "event-1"), ["--after", "event id"]),
        (("search", "--count", "-3"), ["--count"]),
    ],
)
def test_bad_options_exit_2_with_a_sentence(
    data: str, args: tuple[str, ...], words: list[str]
) -> None:
    done = run(*args, "--data", data)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr
