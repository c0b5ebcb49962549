"""The typed keyword arguments (keywords.py) list exactly the options and hooks."""

from __future__ import annotations

import dataclasses
from typing import get_type_hints

from goomerang_io.hooks import CLIENT_HOOKS, SERVER_HOOKS
from goomerang_io.keywords import ClientKeywords, ServerKeywords
from goomerang_io.options import ClientOptions, ServerOptions


def test_server_keywords_match_options_and_hooks() -> None:
    fields = {f.name for f in dataclasses.fields(ServerOptions)}
    assert set(get_type_hints(ServerKeywords)) == fields | set(SERVER_HOOKS)


def test_client_keywords_match_options_and_hooks() -> None:
    fields = {f.name for f in dataclasses.fields(ClientOptions)}
    assert set(get_type_hints(ClientKeywords)) == fields | set(CLIENT_HOOKS)
