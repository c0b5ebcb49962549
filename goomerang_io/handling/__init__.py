"""What every runtime does with the engine's events, written once and without IO.

A runtime (asyncio, trio, the blocking client) reads, writes, arms the timer
and spawns tasks; these modules decide what an event means: which handler
runs, which waiting request a reply settles, which error is reported or sent
back, which client command is allowed. They never wait, so they fit any loop.

* :mod:`.pending`: the client's table of sync requests waiting for replies.
* :mod:`.client_events`: a client's messages, replies, error replies, losses
  and statuses.
* :mod:`.handlers`: a handler job, and what a handler's failure becomes.
* :mod:`.requests`: a server's messages and sync requests to their handlers,
  with the error replies of a negotiated peer.
* :mod:`.commands`: a server's rules for the commands clients send (broadcast,
  publish, subscribe, unsubscribe).
* :mod:`.fanout`: one message queued on many connections.
* :mod:`.server_events`: one process's connections and topics, and what each
  event of a server connection's engine means.

:mod:`goomerang_io.engines` builds the engines from the options. An
import-linter contract keeps these modules free of any runtime.
"""
