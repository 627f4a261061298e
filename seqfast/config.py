"""The server's settings: one frozen `Config`, read from flags, environment and a TOML file.

Every setting is declared once, as a field of `Config` below, with its default, its type (the
parser in the field's metadata) and a one-line description.  Everything else is derived from
that declaration: the command-line flags (`--payload-limit-bytes`), the environment variables
(`SEQFAST_PAYLOAD_LIMIT_BYTES`), the TOML keys (`payload_limit_bytes`) and the README's table
(`settings_table_markdown()`).

Precedence, highest first: command line, environment, config file, default.  The config file is
named by `--config FILE` or `SEQFAST_CONFIG`.  Relative paths in the file are taken relative to
the file's directory (so a service's config works whatever its working directory); relative
paths on the command line or in the environment are relative to the working directory.  An empty
environment variable counts as unset, so that templated deployments can leave one blank.

Sizes are integers (bytes) or text such as `10MiB`, `256 KiB` or `1.5GB` (KiB/MiB/GiB/TiB are
powers of 1024, KB/MB/GB/TB powers of 1000).  Booleans are TOML booleans, or the text
true/false, yes/no, on/off, 1/0.

Everything wrong is reported at start, as a `ConfigError` naming the setting, the value and
where it came from (the flag, the variable, or `file:key`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from seqfast.errors import SeqfastError
from seqfast.events import levels

if TYPE_CHECKING:
    from seqfast.cluster.timing import Timing

ENV_PREFIX: Final = "SEQFAST_"
CONFIG_FILE_VARIABLE: Final = "SEQFAST_CONFIG"
# SEQFAST_* variables that are not server settings: the config file's name, and the build's and
# the CI scripts' own knobs, which may well be exported in a shell that also runs the server.
_OTHER_VARIABLES: Final = frozenset({CONFIG_FILE_VARIABLE, "SEQFAST_DEBUG", "SEQFAST_VENV"})

KiB: Final = 1 << 10
MiB: Final = 1 << 20
GiB: Final = 1 << 30
_SIZE_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": KiB,
    "mib": MiB,
    "gib": GiB,
    "tib": 1 << 40,
}
_SIZE_RE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})

# The server's own log level, by Seq level name; Python logging has nothing below DEBUG, so
# Verbose gets the conventional unnamed level 5.
_PYTHON_LOG_LEVELS: Final[dict[str, int]] = {
    "Verbose": 5,
    "Debug": logging.DEBUG,
    "Information": logging.INFO,
    "Warning": logging.WARNING,
    "Error": logging.ERROR,
    "Fatal": logging.CRITICAL,
}


class ConfigError(SeqfastError, ValueError):
    """A setting is missing, malformed, out of range or inconsistent; the server won't start."""


class _Invalid(Exception):
    """Raised by a setting's parser: `expectation` completes "<name> must ...", e.g. "must be
    HOST:PORT"; the caller adds the name, the value and its source."""

    def __init__(self, expectation: str) -> None:
        super().__init__(expectation)
        self.expectation = expectation


# ----------------------------------------------------------------------------------------------
# Value parsers.  Each takes the raw value (text from a flag or variable, or a TOML value) and
# returns the typed value or raises _Invalid.


def parse_size(raw: object) -> int:
    """Bytes from an integer or text such as "10MiB", "256 KiB", "1.5GB" or "1048576"."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _Invalid("must be a size such as 10MiB or 1048576")
    if isinstance(raw, int):
        number, unit = Decimal(raw), ""
    else:
        match = _SIZE_RE.fullmatch(raw)
        if match is None or match[2].lower() not in _SIZE_UNITS:
            raise _Invalid(
                "must be a size such as 10MiB or 1048576 (units B, KiB, MiB, GiB, KB, MB…)"
            )
        number, unit = Decimal(match[1]), match[2].lower()  # the pattern admits only decimals
    if number < 0:
        raise _Invalid("must not be negative")
    return int(number * _SIZE_UNITS[unit])  # fractions of a byte are dropped


def format_size(value: int) -> str:
    """The shortest exact spelling of `value` bytes: "10 MiB", "256 KiB", "1000 B"."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value and value % factor == 0:
            return f"{value // factor} {unit}"
    return f"{value} B"


def _size_at_least(minimum: int) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        value = parse_size(raw)
        if value < minimum:
            raise _Invalid(f"must be at least {format_size(minimum)}")
        return value

    return parse


def _int_between(minimum: int, maximum: int) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        value = _integer(raw)
        if not minimum <= value <= maximum:
            raise _Invalid(f"must be an integer from {minimum} to {maximum}")
        return value

    return parse


def _integer(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise _Invalid("must be an integer")


def _positive_seconds(raw: object) -> float:
    value: float
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise _Invalid("must be a number of seconds") from None
    else:
        raise _Invalid("must be a number of seconds")
    if not 0 < value < float("inf"):
        raise _Invalid("must be a positive number of seconds")
    return value


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise _Invalid("must be true or false")


def _path(raw: object) -> Path:
    if not isinstance(raw, str) or not raw.strip():
        raise _Invalid("must be a path")
    return Path(raw).expanduser()


def _listen(raw: object) -> str:
    """HOST:PORT, with an IPv6 host in brackets ("[::1]:5341"); port 0 asks for any free port."""
    if isinstance(raw, str):
        host, sep, port = raw.strip().rpartition(":")
        if host.startswith("["):
            host_ok = len(host) > 2 and host.endswith("]") and "]" not in host[1:-1]
        else:
            host_ok = bool(host) and ":" not in host  # a bare IPv6 address is ambiguous
        if sep and host_ok and port.isascii() and port.isdigit() and int(port) <= 65535:
            return f"{host}:{int(port)}"
    raise _Invalid("must be HOST:PORT")


def _database_url(raw: object) -> str:
    expectation = "must be a PostgreSQL or SQLite URL such as postgresql://user@host/db"
    if not isinstance(raw, str):
        raise _Invalid(expectation)
    if not raw.strip():
        return ""
    # Imported here so that reading the configuration does not load SQLAlchemy up front.
    from seqfast.meta.db import MetadataError, normalise_url

    try:
        normalise_url(raw.strip())
    except MetadataError:
        raise _Invalid(expectation) from None
    return raw.strip()


_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ADVERTISE_RE: Final = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?")
TIMING_PROFILES: Final = ("default", "test")


def _name(raw: object) -> str:
    """A cluster name or node id: 1 to 128 letters, digits, '.', '_' or '-'."""
    if isinstance(raw, str) and _NAME_RE.fullmatch(raw.strip()):
        return raw.strip()
    raise _Invalid(
        "must be 1 to 128 letters, digits, '.', '_' or '-', starting with one of the first two"
    )


def _optional_name(raw: object) -> str:
    if isinstance(raw, str) and not raw.strip():
        return ""
    return _name(raw)


def _advertise(raw: object) -> str:
    """The URL other nodes reach this one at: http(s)://HOST[:PORT], no path."""
    if isinstance(raw, str):
        url = raw.strip().rstrip("/")
        if not url:
            return ""
        match = _ADVERTISE_RE.fullmatch(url)
        if match and (match[2] is None or int(match[2][1:]) <= 65535):
            return url
    raise _Invalid("must be a URL such as http://10.0.0.5:5341 (scheme, host and port only)")


def _timing_profile(raw: object) -> str:
    if isinstance(raw, str) and raw.strip().lower() in TIMING_PROFILES:
        return raw.strip().lower()
    raise _Invalid(f"must be one of {', '.join(TIMING_PROFILES)}")


def _level(raw: object) -> str:
    name = levels.canonical(raw) if isinstance(raw, str) else None
    if name is None:
        raise _Invalid(f"must be a log level: {', '.join(levels.LEVELS)}")
    return name


# ----------------------------------------------------------------------------------------------
# The declaration.

_T = TypeVar("_T")


def _setting(
    default: _T,
    description: str,
    parse: Callable[[object], object],
    metavar: str,
    *,
    shown: str | None = None,
    secret: bool = False,
) -> _T:
    """One setting: the field's default plus what the derived views need.  `shown` overrides how
    the default is printed; `secret` keeps the value (it may hold a password) out of `repr`."""
    meta = {
        "description": description,
        "parse": parse,
        "metavar": metavar,
        "shown": shown,
        "secret": secret,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True, repr=False)
class Config:
    """The server's settings, validated.  Build it with `load_config` or `config_from_args`;
    direct construction checks only the rules that tie settings together."""

    # _setting returns dataclasses.field(...), so the default is not a shared call result.
    data: Path = _setting(  # noqa: RUF009
        Path("./seqfast-data"), "data directory", _path, "DIR", shown="./seqfast-data"
    )
    listen: str = _setting(
        "127.0.0.1:5341", "address to serve HTTP on (port 0: any free port)", _listen, "HOST:PORT"
    )
    require_api_key: bool = _setting(
        False, "reject ingestion without a valid API key", _boolean, "BOOL"
    )
    payload_limit_bytes: int = _setting(
        10 * MiB, "largest request body, after decompression (413 above)", _size_at_least(1), "SIZE"
    )
    event_limit_bytes: int = _setting(
        256 * KiB,
        "largest single event (the batch is rejected with 400 above)",
        _size_at_least(1),
        "SIZE",
    )
    queue_limit_bytes: int = _setting(
        64 * MiB, "bytes accepted but not yet stored; 503 beyond", _size_at_least(1), "SIZE"
    )
    free_disk_reserve_bytes: int = _setting(
        512 * MiB,
        "ingestion answers 503 while less disk than this is free",
        _size_at_least(0),
        "SIZE",
    )
    retry_after_seconds: int = _setting(
        2, "Retry-After sent with 503 and 429 answers", _int_between(1, 3600), "SECONDS"
    )
    header_timeout_seconds: float = _setting(
        10.0, "longest time to receive a request's headers", _positive_seconds, "SECONDS"
    )
    keepalive_timeout_seconds: float = _setting(
        75.0, "how long an idle connection is kept open", _positive_seconds, "SECONDS"
    )
    body_timeout_seconds: float = _setting(
        30.0, "longest time without progress while reading a body", _positive_seconds, "SECONDS"
    )
    body_total_timeout_seconds: float = _setting(
        120.0, "longest time to receive a whole request body", _positive_seconds, "SECONDS"
    )
    max_header_bytes: int = _setting(
        16 * KiB, "largest request line and headers together", _size_at_least(KiB), "SIZE"
    )
    max_connections: int = _setting(
        1024,
        "open connections served at once; more are answered 503 and closed",
        _int_between(1, 1_000_000),
        "N",
    )
    ingest_threads: int = _setting(
        2, "threads that decode and store ingested batches", _int_between(1, 256), "N"
    )
    query_cache_mb: int = _setting(
        512,
        "memory (MiB) for decoded block columns kept for queries; 0 turns the cache off",
        _int_between(0, 1 << 20),
        "MB",
    )
    metadata_db: str = _setting(
        "",
        "SQLAlchemy URL of the metadata database (API keys, leases)",
        _database_url,
        "URL",
        shown="sqlite:///<data>/metadata.sqlite",
        secret=True,
    )
    cluster_db: str = _setting(
        "",
        "SQLAlchemy URL of the database the nodes of a cluster share (leader lease, membership)",
        _database_url,
        "URL",
        shown="sqlite:///<data>/cluster.sqlite",
        secret=True,
    )
    cluster_name: str = _setting(
        "default", "the cluster's name in that database (several may share one)", _name, "NAME"
    )
    node_id: str = _setting(
        "",
        "this node's id in the cluster",
        _optional_name,
        "ID",
        shown="generated once, kept in <data>/node-id",
    )
    advertise: str = _setting(
        "",
        "the URL other nodes and clients reach this node at",
        _advertise,
        "URL",
        shown="http://<listen address>",
    )
    timing_profile: str = _setting(
        "default",
        "lease timing: default (15 s lease, failover within about 20 s) or test (about 5 s)",
        _timing_profile,
        "NAME",
    )
    retention_interval_seconds: float = _setting(
        600.0, "how often retention policies are applied", _positive_seconds, "SECONDS"
    )
    query_timeout_seconds: float = _setting(
        60.0,
        "longest time a search or query may run (503 beyond)",
        _positive_seconds,
        "SECONDS",
    )
    tail_buffer_events: int = _setting(
        100_000,
        "events waiting for a live-tail client; a client further behind is disconnected",
        _int_between(1, 10_000_000),
        "N",
    )
    log_level: str = _setting("Information", "the server's own log level", _level, "LEVEL")

    def __post_init__(self) -> None:
        _check_together({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, {})

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={_public_value(self, name)!r}" for name in SETTINGS)
        return f"Config({shown})"

    @property
    def listen_host(self) -> str:
        """The host part of `listen`, without IPv6 brackets."""
        return self.listen.rpartition(":")[0].removeprefix("[").removesuffix("]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def metadata_url(self) -> str:
        """The metadata database to use: `metadata_db`, or a SQLite file in the data directory."""
        if self.metadata_db:
            return self.metadata_db
        return f"sqlite:///{(self.data / 'metadata.sqlite').absolute()}"

    @property
    def cluster_url(self) -> str:
        """The cluster database: `cluster_db`, or a SQLite file in the data directory (a
        cluster of one node, run by the same code)."""
        if self.cluster_db:
            return self.cluster_db
        return f"sqlite:///{(self.data / 'cluster.sqlite').absolute()}"

    @property
    def timing(self) -> Timing:
        """The lease timing of `timing_profile`."""
        from seqfast.cluster import timing

        return timing.TEST if self.timing_profile == "test" else timing.DEFAULT

    @property
    def python_log_level(self) -> int:
        """`log_level` as a `logging` level number."""
        return _PYTHON_LOG_LEVELS[self.log_level]


SETTINGS: Final[dict[str, dataclasses.Field[Any]]] = {f.name: f for f in dataclasses.fields(Config)}


def _public_value(config: Config, name: str) -> object:
    value = getattr(config, name)
    if SETTINGS[name].metadata["secret"] and value:
        from seqfast.meta.db import redact_url

        return redact_url(str(value))
    return value


# ----------------------------------------------------------------------------------------------
# Derived names and views.


def env_name(setting: str) -> str:
    """The environment variable of a setting: SEQFAST_ + upper snake case."""
    return ENV_PREFIX + setting.upper()


def flag_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def _is_bool(setting: str) -> bool:
    return SETTINGS[setting].metadata["parse"] is _boolean


def _is_path(setting: str) -> bool:
    return SETTINGS[setting].metadata["parse"] is _path


def shown_default(setting: str) -> str:
    """The default as a user would write it."""
    definition = SETTINGS[setting]
    if definition.metadata["shown"] is not None:
        return str(definition.metadata["shown"])
    value: Any = definition.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if definition.metadata["metavar"] == "SIZE":
        return format_size(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_table_markdown() -> str:
    """The settings as a Markdown table (the README's), one row per setting."""
    rows = [
        "| Setting (TOML key) | Flag | Environment variable | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for name, definition in SETTINGS.items():
        flag = f"`{flag_name(name)}`"
        if _is_bool(name):
            flag += f" / `--no-{name.replace('_', '-')}`"
        rows.append(
            f"| `{name}` | {flag} | `{env_name(name)}` | `{shown_default(name)}` "
            f"| {definition.metadata['description']} |"
        )
    return "\n".join(rows) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `--config FILE` and one flag per setting; every flag defaults to None (= not given),
    so that `config_from_args` can tell a flag from a default."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None,
        help=f"read settings from this TOML file (${CONFIG_FILE_VARIABLE})",
    )
    for name, definition in SETTINGS.items():
        text = (
            f"{definition.metadata['description']} "
            f"(default {shown_default(name)}; ${env_name(name)})"
        ).replace("%", "%%")
        if _is_bool(name):
            parser.add_argument(
                flag_name(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        else:
            parser.add_argument(
                flag_name(name),
                dest=name,
                metavar=definition.metadata["metavar"],
                default=None,
                help=text,
            )


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The configuration from flags added by `add_arguments`, the environment and the config
    file named by `--config` or `SEQFAST_CONFIG`."""
    overrides: dict[str, str | None] = {}
    for name in SETTINGS:
        value = getattr(args, name, None)
        if isinstance(value, bool):
            overrides[name] = "true" if value else "false"
        else:
            overrides[name] = None if value is None else str(value)
    config_file: Path | None = getattr(args, "config", None)
    if config_file is None and environ.get(CONFIG_FILE_VARIABLE):
        config_file = Path(environ[CONFIG_FILE_VARIABLE])
    return load_config(overrides, environ, config_file)


# ----------------------------------------------------------------------------------------------
# Loading.

# name -> (raw value, where it came from)
_Layer = dict[str, tuple[object, str]]


def load_config(
    argv_overrides: Mapping[str, str | None],
    environ: Mapping[str, str],
    config_file: Path | None,
) -> Config:
    """The configuration: `argv_overrides` (setting name -> text, None = not given) over
    `environ`'s SEQFAST_* variables over `config_file` (TOML) over the defaults."""
    chosen: _Layer = {}
    if config_file is not None:
        chosen.update(_read_file(config_file))
    chosen.update(_read_environ(environ))
    chosen.update(_read_overrides(argv_overrides))
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for name, definition in SETTINGS.items():
        if name in chosen:
            raw, origins[name] = chosen[name]
            values[name] = _parse(name, raw, origins[name])
        else:
            values[name] = definition.default
    _check_together(values, origins)
    return Config(**values)  # type: ignore[arg-type]


def _parse(name: str, raw: object, origin: str) -> object:
    try:
        return SETTINGS[name].metadata["parse"](raw)
    except _Invalid as exc:
        shown = _shown_raw(name, raw)
        raise ConfigError(f"{name} {exc.expectation}, got {shown} (from {origin})") from None


def _shown_raw(name: str, raw: object) -> str:
    """A rejected value as it can be printed: a secret setting's password is masked."""
    if not SETTINGS[name].metadata["secret"]:
        return repr(raw)
    from seqfast.meta.db import redact_url

    shown = redact_url(raw) if isinstance(raw, str) else None
    return "a value that is not a URL" if shown is None else repr(shown)


def _read_overrides(overrides: Mapping[str, str | None]) -> _Layer:
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown settings given on the command line: {', '.join(unknown)}")
    return {
        name: (value, flag_name(name)) for name, value in overrides.items() if value is not None
    }


def _read_environ(environ: Mapping[str, str]) -> _Layer:
    by_variable = {env_name(name): name for name in SETTINGS}
    ours = [v for v in environ if v.startswith(ENV_PREFIX) and v not in _OTHER_VARIABLES]
    unknown = sorted(v for v in ours if v not in by_variable)
    if unknown:
        raise ConfigError(
            _unknown_message("environment variable", unknown, by_variable, prefix=ENV_PREFIX)
        )
    return {by_variable[v]: (environ[v], v) for v in ours if environ[v] != ""}


def _read_file(path: Path) -> _Layer:
    try:
        with path.open("rb") as source:
            document = tomllib.load(source)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(key for key in document if key not in SETTINGS)
    if unknown:
        raise ConfigError(
            f"config file {path} has " + _unknown_message("setting", unknown, SETTINGS)
        )
    layer: _Layer = {}
    for key, raw in document.items():
        if _is_path(key) and isinstance(raw, str) and raw and not raw.startswith("~"):
            raw = str(path.parent / raw)  # relative to the file; absolute paths stay as they are
        layer[key] = (raw, f"{path}:{key}")
    return layer


def _unknown_message(
    what: str, unknown: Iterable[str], known: Iterable[str], *, prefix: str = ""
) -> str:
    """ "unknown settings: a, b (did you mean c?)"; names are compared without their common
    `prefix`, which would make every name look alike."""
    stems = {name.removeprefix(prefix): name for name in known}
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name.removeprefix(prefix), stems, n=1, cutoff=0.7)
        parts.append(f"{name} (did you mean {stems[close[0]]}?)" if close else name)
    plural = "s" if len(parts) > 1 else ""
    return f"unknown {what}{plural}: {', '.join(parts)}"


def _check_together(values: Mapping[str, Any], origins: Mapping[str, str]) -> None:
    """The rules that tie settings together.  A request body must be able to hold one maximal
    event, and the queue must be able to hold one maximal request, or such requests could
    never be accepted."""

    def described(name: str) -> str:
        value = values[name]
        return f"{format_size(value)} ({origins.get(name, 'default')})"

    for larger, smaller in (
        ("payload_limit_bytes", "event_limit_bytes"),
        ("queue_limit_bytes", "payload_limit_bytes"),
    ):
        if values[larger] < values[smaller]:
            raise ConfigError(
                f"{larger} must be at least {smaller}, got {described(larger)} "
                f"< {described(smaller)}"
            )
