"""The container and service files, and what the image's build steps do.

Docker is not needed: the Dockerfile, compose.yaml and the systemd unit are parsed and their
essentials checked (and cross-checked against the command line and the settings they name);
then the image's build is replayed for real: the build context (the tree less `.dockerignore`)
is turned into a wheel with `pip wheel --no-deps`, the wheel is installed with its dependencies
into a clean virtual environment, and `seqfast serve` from there takes a CLEF batch (201),
answers /health (200, also through the image's own HEALTHCHECK command) and stops on SIGTERM
with exit status 0.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seqfast.cli import build_parser
from seqfast.config import SETTINGS, env_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "seqfast.service"

SETTING_VARIABLES = {env_name(name) for name in SETTINGS}


# ----------------------------------------------------------------------------------------------
# Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's list, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
        return value


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (each stage starts with FROM); comments and line
    continuations handled as Docker does."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        logical.append(current.strip())
        current = ""
    assert not current, "the Dockerfile ends inside a line continuation"
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(args.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        elif instruction.keyword != "ARG":
            assert stages, f"{keyword} before the first FROM"
        if stages:
            stages[-1].append(instruction)
    return stages


def _all(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def _one(stage: list[Instruction], keyword: str) -> Instruction:
    found = _all(stage, keyword)
    assert len(found) == 1, f"expected one {keyword} in the stage, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_dockerfile_is_multi_stage_and_builds_the_wheel_in_the_builder(
    stages: list[list[Instruction]],
) -> None:
    assert len(stages) == 2, "a builder stage and a runtime stage"
    builder, final = stages
    base, _, name = builder[0].args.partition(" AS ")
    assert base.strip() == "python:3.11-slim" and name.strip() == "builder"
    assert final[0].args == "python:3.11-slim"
    builder_runs = " && ".join(i.args for i in _all(builder, "RUN"))
    assert "build-essential" in builder_runs
    assert re.search(r"pip wheel\b.*--no-deps.*-w /wheels \.", builder_runs), builder_runs
    assert not any("build-essential" in i.args for i in _all(final, "RUN"))


def test_dockerfile_runtime_stage_installs_the_wheel_and_runs_unprivileged(
    stages: list[list[Instruction]],
) -> None:
    final = stages[1]
    keywords = [i.keyword for i in final]
    copy = [i for i in _all(final, "COPY") if "--from=builder" in i.args]
    assert copy and "/wheels" in copy[0].args
    install = [
        i for i in _all(final, "RUN") if re.search(r"pip install\b.*/wheels/\S*\.whl", i.args)
    ]
    assert install, "the runtime stage installs the wheel (its dependencies come with it)"
    assert "--no-deps" not in install[0].args
    user = _one(final, "USER").args
    assert user not in ("root", "0") and user.split(":")[0] == "seqfast"
    assert any("useradd" in i.args and "seqfast" in i.args for i in _all(final, "RUN"))
    # Installed as root, then run as the user: USER comes after the install, before the start.
    assert keywords.index("USER") > final.index(install[0])
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_dockerfile_volume_port_environment_and_signal(stages: list[list[Instruction]]) -> None:
    final = stages[1]
    assert _one(final, "VOLUME").args in ("/data", '["/data"]')
    assert _one(final, "EXPOSE").args.split() == ["5341"]
    env: dict[str, str] = {}
    for instruction in _all(final, "ENV"):
        for token in shlex.split(instruction.args):
            name, sep, value = token.partition("=")
            if sep:
                env[name] = value
    assert env.get("SEQFAST_DATA") == "/data"
    assert env.get("SEQFAST_LISTEN") == "0.0.0.0:5341"
    unknown = {k for k in env if k.startswith("SEQFAST_")} - SETTING_VARIABLES
    assert not unknown, f"not seqfast settings: {unknown}"
    assert _one(final, "STOPSIGNAL").args == "SIGTERM"
    entrypoint = _one(final, "ENTRYPOINT").exec_form()
    assert entrypoint == ["seqfast", "serve"]
    build_parser().parse_args(entrypoint[1:])  # a command line the CLI accepts


def healthcheck_command(stages: list[list[Instruction]]) -> list[str]:
    args = _one(stages[1], "HEALTHCHECK").args
    options, sep, command = args.partition("CMD ")
    assert sep, "HEALTHCHECK CMD ..."
    for option in ("--interval=", "--timeout=", "--retries="):
        assert option in options
    parsed = Instruction("CMD", command).exec_form()
    assert parsed is not None, "the HEALTHCHECK command is in exec form"
    return parsed


def test_dockerfile_healthcheck_asks_health_with_python(stages: list[list[Instruction]]) -> None:
    command = healthcheck_command(stages)
    assert command[:2] == ["python", "-c"]
    assert "/health" in command[2] and "urllib" in command[2]
    assert "curl" not in command[2] and "wget" not in command[2]
    compile(command[2], "HEALTHCHECK", "exec")


def _ignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert not line.startswith("!"), "exceptions are not used (nor handled here)"
            patterns.append(line.rstrip("/"))
    return patterns


def _ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's matching, as far as these patterns need it: patterns are relative to the
    context root, `**/` matches any number of directories, a matched directory excludes all
    below it."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatchcase(part, tail) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    patterns = _ignore_patterns()
    for path in (".git", ".venv", "bench/.data", "build", "node_modules", "dist"):
        assert _ignored(path, patterns), f"{path} should not be sent to the builder"
    for path in ("seqfast/_native.cpython-311-x86_64-linux-gnu.so", "seqfast/__pycache__/x.pyc"):
        assert _ignored(path, patterns), path
    for path in ("pyproject.toml", "setup.py", "README.md", "native/_native.pyx", "seqfast/cli.py"):
        assert not _ignored(path, patterns), f"{path} is needed to build the wheel"


# ----------------------------------------------------------------------------------------------
# compose.yaml


def parse_simple_yaml(text: str) -> Any:
    """The YAML subset compose.yaml is written in: block mappings and sequences by indentation,
    plain or quoted scalars (integers, booleans and null as YAML reads them), and JSON-style
    flow sequences.  Anything else is an error."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assert "\t" not in raw[: len(raw) - len(raw.lstrip())], "tabs in indentation"
        lines.append((len(raw) - len(raw.lstrip(" ")), stripped))

    def scalar(value: str) -> Any:
        if value.startswith("["):
            return json.loads(value)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            return value[1:-1]
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        return {"true": True, "false": False, "null": None}.get(value, value)

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- "):
            items: list[Any] = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                items.append(scalar(lines[i][1][2:].strip()))
                i += 1
            return items, i
        mapping: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            key, sep, rest = lines[i][1].partition(":")
            assert sep, f"not a mapping entry: {lines[i][1]!r}"
            rest = rest.strip()
            i += 1
            if rest:
                mapping[key.strip()] = scalar(rest)
            elif i < len(lines) and lines[i][0] > indent:
                mapping[key.strip()], i = block(i, lines[i][0])
            else:
                mapping[key.strip()] = None
        return mapping, i

    value, end = block(0, lines[0][0])
    assert end == len(lines), f"unparsed from line {lines[end][1]!r}"
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = COMPOSE.read_text()
    parsed = parse_simple_yaml(text)
    try:  # where PyYAML is installed (it is not a dependency), cross-check the subset parser
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        assert yaml.safe_load(text) == parsed
    assert isinstance(parsed, dict)
    return parsed


def test_compose_runs_one_node_with_port_volume_restart_and_healthcheck(
    compose: dict[str, Any],
) -> None:
    (_name, service), *others = compose["services"].items()
    assert not others, "one node"
    assert service["build"] == "."
    assert "5341:5341" in service["ports"]
    volume, _, target = service["volumes"][0].partition(":")
    assert target == "/data" and volume in (compose.get("volumes") or {}), "a named volume"
    assert service["restart"] == "unless-stopped"
    env = service.get("environment") or {}
    assert set(k for k in env if k.startswith("SEQFAST_")) <= SETTING_VARIABLES
    assert env.get("SEQFAST_DATA", "/data") == "/data"
    health = service["healthcheck"]
    assert health["test"][0] in ("CMD", "CMD-SHELL") and "/health" in " ".join(health["test"])
    for key in ("interval", "timeout", "retries"):
        assert key in health
    # Longer than the server's own 30 s grace for in-flight requests.
    grace = service.get("stop_grace_period", "10s")
    assert grace.endswith("s") and int(grace[:-1]) >= 30, grace


# ----------------------------------------------------------------------------------------------
# systemd unit


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_restarts_runs_unprivileged_and_is_hardened() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]

    def value(key: str) -> str:
        assert key in service, f"[Service] {key}= is missing"
        return service[key][-1]

    argv = shlex.split(value("ExecStart"))
    assert argv[:2] == ["/usr/local/bin/seqfast", "serve"]
    args = build_parser().parse_args(argv[1:])
    assert args.data == "/var/lib/seqfast"
    assert value("Restart") == "always"
    assert value("User") not in ("root", "0")
    assert value("KillSignal") == "SIGTERM"
    assert value("TimeoutStopSec") == "60"
    assert value("NoNewPrivileges") == "yes"
    assert value("ProtectSystem") == "strict"
    assert "/var/lib/seqfast" in value("ReadWritePaths").split()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


# ----------------------------------------------------------------------------------------------
# The image's build, replayed: wheel, clean venv, serve, ingest, health, SIGTERM

STEP_TIMEOUT = 240.0  # any one step; the whole test usually takes 20-40 s
CLEF = (
    b'{"@t":"2026-01-02T03:04:05.678Z","@mt":"Order {OrderId} placed","OrderId":42}\n'
    b'{"@t":"2026-01-02T03:04:06Z","@l":"Warning","@mt":"Slow {Ms}","Ms":812.5}\n'
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEQFAST_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def _run(cmd: list[str], what: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env or _clean_env(),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} took more than {STEP_TIMEOUT:.0f} s: {shlex.join(cmd)}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        pytest.fail(f"{what} failed (exit {proc.returncode}): {shlex.join(cmd)}\n{tail}")
    return proc.stdout


def _copy_context(dest: Path) -> None:
    """The Docker build context: the tree less what .dockerignore excludes."""
    patterns = _ignore_patterns()

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if rel == "." else rel + "/"
        return {n for n in names if _ignored(prefix + n, patterns)}

    shutil.copytree(ROOT, dest, ignore=ignore)


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    log: Path
    address: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    context = tmp_path / "context"
    _copy_context(context)
    assert not (context / ".git").exists() and (context / "native").is_dir()
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), "."],
        "building the wheel (pip wheel --no-deps)",
        cwd=context,
    )
    built = sorted(wheels.glob("seqfast-*.whl"))
    assert len(built) == 1, f"expected one seqfast wheel, got {[w.name for w in built]}"
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], "creating a virtual environment", tmp_path)
    python = venv / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "--quiet", str(built[0])],
        "installing the wheel and its dependencies into a clean venv",
        cwd=tmp_path,
    )
    where = _run(
        [str(python), "-c", "import seqfast, seqfast._native; print(seqfast.__file__)"],
        "importing the installed package",
        cwd=tmp_path,
    ).strip()
    assert Path(where).is_relative_to(venv), f"seqfast imported from {where}, not the venv"

    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    # Configured the way the image configures it: through SEQFAST_DATA and SEQFAST_LISTEN.
    env = _clean_env(SEQFAST_DATA=str(data), SEQFAST_LISTEN="127.0.0.1:0")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "seqfast"), "serve"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            match = re.search(r'"Address":"(http://127\.0\.0\.1:\d+)"', log.read_text())
            if match:
                address = match[1]
            elif proc.poll() is not None:
                pytest.fail(f"seqfast serve exited with {proc.returncode}:\n{log.read_text()}")
            elif time.monotonic() > deadline:
                pytest.fail(f"seqfast serve did not log its address in 60 s:\n{log.read_text()}")
            else:
                time.sleep(0.05)
        yield RunningServer(proc, log, address), venv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
def test_built_wheel_serves_ingests_and_stops_cleanly(
    served: tuple[RunningServer, Path], stages: list[list[Instruction]]
) -> None:
    server, venv = served
    status, body = _request(
        server.address + "/api/events/raw",
        CLEF,
        {"Content-Type": "application/vnd.serilog.clef"},
    )
    assert status == 201, f"POST /api/events/raw: {status} {body!r}"
    assert json.loads(body) == {"MinimumLevelAccepted": None}
    status, body = _request(server.address + "/health")
    assert status == 200, f"GET /health: {status} {body!r}"

    # The image's own HEALTHCHECK command, pointed at this server through SEQFAST_LISTEN.
    port = server.address.rpartition(":")[2]
    command = healthcheck_command(stages)
    check = subprocess.run(
        [str(venv / "bin" / "python"), *command[1:]],
        env=_clean_env(SEQFAST_LISTEN=f"0.0.0.0:{port}"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, f"the HEALTHCHECK command failed: {check.stderr}"

    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"seqfast serve did not stop within 60 s of SIGTERM:\n{server.log.read_text()}")
    log = server.log.read_text()
    assert code == 0, f"seqfast serve exited with {code} after SIGTERM:\n{log}"
    assert "Stopped; the store is closed" in log

    # What was acknowledged is in the store.
    data = server.log.parent / "data"
    stats = _run(
        [str(venv / "bin" / "seqfast"), "stats", "--data", str(data)],
        "seqfast stats",
        cwd=server.log.parent,
    )
    assert json.loads(stats)["events"] == 2
