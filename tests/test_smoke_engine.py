"""End-to-end smoke test of two engines wired back to back in memory."""

from goomerang_proto import ClientConnection, Message, Registry, ServerConnection, Status
from goomerang_proto import events as ev
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1


def _pump(c: ClientConnection, s: ServerConnection) -> None:
    for _ in range(4):
        data = c.data_to_send()
        if data:
            s.receive_data(data)
        data = s.data_to_send()
        if data:
            c.receive_data(data)


def test_round_trip_and_close() -> None:
    reg = Registry(MessageV1)
    s = ServerConnection(registry=reg)
    c = ClientConnection("127.0.0.1:1", registry=reg)
    _pump(c, s)
    assert s.status is Status.RUNNING and c.status is Status.RUNNING
    assert [type(e) for e in s.events()] == [ev.Connected]
    c.send(Message(MessageV1(message="hello"), {"k": "v"}))
    _pump(c, s)
    (got,) = s.events()
    assert isinstance(got, ev.MessageReceived)
    assert got.message.payload.message == "hello" and got.message.headers == {"k": "v"}
    c.close()
    _pump(c, s)
    assert s.status is Status.CLOSED and c.status is Status.CLOSED
    assert s.should_close_transport()
