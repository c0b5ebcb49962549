"""What a user writes to test their handlers: only the public testing API.

The README's "Testing your code and your peers" section shows these tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from goomerang_io import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1
from goomerang_proto.testing import Pair, PairServer
from goomerang_proto.testing import strategies as gs
from goomerang_proto.testing.machine import HandlerMachine


# --- the application code under test -------------------------------------------------
def shout(sender: Any, message: Message[Any]) -> None:
    """Reply with the text upper-cased and a ``by`` header."""
    sender.send(Message(MessageV1(message=message.payload.message.upper()), {"by": "shout"}))


def tag_tenant(next_handler: Any) -> Any:
    """A middleware that refuses messages without a ``tenant`` header."""

    def handler(sender: Any, message: Message[Any]) -> Any:
        if "tenant" not in message.headers:
            return sender.send(Message(MessageV1(message="no tenant"), {"error": "1"}))
        return next_handler(sender, message)

    return handler


def setup(endpoint: Any) -> None:
    """Registers the application's handlers on a real Server or on the in-memory pair."""
    endpoint.middleware(tag_tenant)
    endpoint.handle(MessageV1, shout)


# --- 1. the in-memory pair: no sockets, microseconds per test --------------------------
def test_shout_replies_in_memory() -> None:
    pair = Pair(connect=False)
    setup(pair.server)
    client = pair.connect()
    reply = client.request(Message(MessageV1(message="hi"), {"tenant": "a"}))
    assert reply.payload.message == "HI" and reply.headers == {"by": "shout"}
    client.send(Message(MessageV1(message="anon")))
    pair.run()
    assert client.received[-1].headers == {"error": "1"}


# --- 2. a property test with the strategies --------------------------------------------
@settings(deadline=None)
@given(gs.messages(MessageV1, header_maps=gs.headers()))
def test_every_message_gets_exactly_one_answer(message: Message[Any]) -> None:
    pair = Pair(connect=False)
    setup(pair.server)
    client = pair.connect()
    reply = client.request(message)
    if "tenant" in message.headers:
        assert reply.payload.message == message.payload.message.upper()
    else:
        assert reply.headers == {"error": "1"}
    assert len(client.inbox) == 1


# --- 3. a state machine against the protocol's invariants --------------------------------
class ShoutMachine(HandlerMachine):
    message_strategy = gs.messages(MessageV1)
    replies_required = True

    def configure(self, server: PairServer) -> None:
        setup(server)


TestShoutMachine = ShoutMachine.TestCase
TestShoutMachine.settings = settings(deadline=None)


# --- 4. the pytest plugin's fixtures ------------------------------------------------------
@pytest.fixture
def goomerang_setup() -> Any:
    return setup


def test_with_the_pair_fixture(goomerang_pair: Pair) -> None:
    reply = goomerang_pair.client.request(Message(MessageV1(message="x"), {"tenant": "t"}))
    assert reply.payload.message == "X"


def test_with_a_real_server_and_client(goomerang_client: Any) -> None:
    reply = goomerang_client.send_sync(Message(MessageV1(message="socket"), {"tenant": "t"}))
    assert reply.payload.message == "SOCKET" and reply.headers == {"by": "shout"}
