"""Who this node is: a node id that survives restarts, and the URL others reach it at.

The id names the node in the cluster database (its heartbeat row, the leader row it holds), so
it must stay the same across restarts of the same data directory: a node that came back under
a new id would leave a ghost member behind and could not recognise its own lease.  Unless one is
configured, it is generated once and kept in `<data>/node-id`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Final

from seqfast.errors import SeqfastError

NODE_ID_FILE: Final = "node-id"
_VALID_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class NodeIdentityError(SeqfastError):
    """The node id file cannot be read or written, or holds something that is not an id."""


def generated_node_id() -> str:
    """A new id: the host name's first label (so that operators recognise it) and 8 random hex
    digits (so that two data directories on one host differ)."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]).strip("-")
    return f"{host[:40] or 'node'}-{secrets.token_hex(4)}"


def node_id_for(data_dir: Path, configured: str = "") -> str:
    """The node id: `configured` if given (and then remembered in the data directory, so that
    later starts without it keep the same id), else the one kept there, else a new one."""
    path = data_dir / NODE_ID_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    except OSError as exc:
        raise NodeIdentityError(f"cannot read the node id from {path}: {exc.strerror}") from None
    if kept and not _VALID_ID.fullmatch(kept):
        raise NodeIdentityError(
            f"{path} does not hold a node id (1 to 128 letters, digits, '.', '_' or '-'); "
            "remove it to get a new id, or give one with --node-id"
        )
    wanted = configured or kept or generated_node_id()
    if wanted != kept:
        _write_atomically(path, wanted)
    return wanted


def _write_atomically(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename, so that a crash leaves
    either the old id or the new one, never a torn file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="utf-8") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise NodeIdentityError(f"cannot write the node id to {path}: {exc.strerror}") from None


def advertise_url(configured: str, bound_host: str, bound_port: int) -> str:
    """The URL other nodes and clients reach this node at: `configured` if given, else built
    from the address the listener bound.  A wildcard address (0.0.0.0, ::) is nobody's
    address, so it is replaced by the host name, which is what peers on a network resolve."""
    if configured:
        return configured.rstrip("/")
    host = bound_host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        host = socket.gethostname()
    elif address is not None and address.version == 6:
        host = f"[{host}]"
    return f"http://{host}:{bound_port}"
