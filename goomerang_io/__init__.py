"""goomerang_io: IO adapters (asyncio/uvloop, blocking sockets, worker processes)."""
