"""What every runtime does with the engine's events, written once and without IO.

A runtime (asyncio, trio, the blocking client) reads, writes, arms the timer
and spawns tasks; these modules decide what an event means: which handler
runs, which waiting request a reply settles, which error is reported or sent
back, which client command is allowed. They never wait, so they fit any loop.

* :mod:`.pending`: the client's table of sync requests waiting for replies.
* :mod:`.client_events`: a client's messages, replies, error replies and losses.
* :mod:`.requests`: a server's messages and sync requests to their handlers,
  with the error replies of a negotiated peer.
* :mod:`.commands`: a server's rules for the commands clients send (broadcast,
  publish, subscribe, unsubscribe).
"""
