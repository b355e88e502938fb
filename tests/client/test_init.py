"""The public surface of ``mianzhang.client``."""

from __future__ import annotations

import mianzhang.client as client


def test_exports_resolve_and_are_the_intended_set() -> None:
    assert sorted(client.__all__) == sorted(
        [
            "Backoff",
            "EventStream",
            "RECONNECT_EVENT",
            "RESET_EVENT",
            "ResetEvent",
            "SyncEventStream",
            "connect",
            "connect_sync",
        ]
    )
    for name in client.__all__:
        assert getattr(client, name) is not None
    assert (client.RESET_EVENT, client.RECONNECT_EVENT) == ("reset", "reconnect")
