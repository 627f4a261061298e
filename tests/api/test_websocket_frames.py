"""Frames built off the event loop for the live tail read back, through a WebSocket client's
parser, as the messages they were built from."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from seqfast.api.websocket_bridge import accept_key, text_frames


def client_messages(chunks: list[bytes]) -> list[str]:
    client = Connection(ConnectionType.CLIENT)
    out: list[str] = []
    text = ""
    for chunk in chunks:
        client.receive_data(chunk)
        for event in client.events():
            assert isinstance(event, TextMessage)
            text += event.data
            if event.message_finished:
                out.append(text)
                text = ""
    return out


@given(
    st.lists(st.text(max_size=300) | st.sampled_from(["x" * 125, "y" * 126, "z" * 70_000])),
    st.integers(min_value=1, max_value=5000),
)
def test_frames_read_back_as_the_messages(messages: list[str], chunk_bytes: int) -> None:
    chunks = text_frames(messages, chunk_bytes)
    assert client_messages(chunks) == messages
    # Chunks hold whole frames: each one parses on its own.
    for chunk in chunks:
        assert client_messages([chunk])


def test_accept_key_of_rfc_6455() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
