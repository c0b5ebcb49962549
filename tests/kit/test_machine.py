"""HandlerMachine: passes for a correct handler, finds the bugs its invariants name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from goomerang_proto import Message
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1
from goomerang_proto.testing import PairServer
from goomerang_proto.testing.machine import HandlerMachine

FAST = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def echo(sender: Any, message: Message[Any]) -> None:
    sender.send(Message(message.payload, message.headers))


class EchoMachine(HandlerMachine):
    replies_required = True

    def configure(self, server: PairServer) -> None:
        server.handle(MessageV1, echo)


def test_a_correct_handler_passes() -> None:
    EchoMachine.TestCase.settings = FAST
    EchoMachine.TestCase().runTest()


class DoubleReply(HandlerMachine):
    def configure(self, server: PairServer) -> None:
        def handler(sender: Any, message: Message[Any]) -> None:
            sender.send(Message(message.payload))
            sender.send(Message(message.payload))

        server.handle(MessageV1, handler)


class StolenReply(HandlerMachine):
    """Answers every request through the first sender it saw: replies reach the wrong client."""

    def configure(self, server: PairServer) -> None:
        first: list[Any] = []

        def handler(sender: Any, message: Message[Any]) -> None:
            if message.is_sync:
                first.append(sender)
                first[0].send(Message(message.payload))

        server.handle(MessageV1, handler)


class NoReply(HandlerMachine):
    replies_required = True

    def configure(self, server: PairServer) -> None:
        server.handle(MessageV1, lambda sender, message: None)


@pytest.mark.parametrize(
    ("machine", "message"),
    [
        (DoubleReply, "two replies"),
        (StolenReply, "two replies|got the reply"),
        (NoReply, "without a reply"),
    ],
)
def test_bugs_are_found(machine: type[HandlerMachine], message: str) -> None:
    machine.TestCase.settings = settings(
        FAST, phases=[Phase.generate], database=None, derandomize=True, max_examples=200
    )
    with pytest.raises(AssertionError, match=message):
        machine.TestCase().runTest()


def test_configure_must_be_overridden() -> None:
    with pytest.raises(NotImplementedError):
        HandlerMachine()
