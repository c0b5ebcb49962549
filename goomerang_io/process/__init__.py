"""Worker processes: the supervisor, the worker entry points and the SO_REUSEPORT socket helpers."""
