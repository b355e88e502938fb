"""One request at a time per tus upload, in this process: the newest request wins.

A ``PATCH`` whose client vanished without the server noticing would otherwise hold its upload
until a timeout, while the client, reconnected, asks ``HEAD`` for the offset. So a request
claiming an upload that is held cancels the holder's scope and waits until the holder has
let go (it saves what it received first): what the new request then reads is final.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

__all__ = ["CLAIM_WAIT", "Claim", "Claims"]

CLAIM_WAIT = 10.0


@dataclass
class Claim:
    """A request's hold on an upload: ``scope`` is cancelled when a newer request claims it
    (the holder runs its interruptible work in it); ``released`` is set once it let go."""

    scope: anyio.CancelScope
    released: anyio.Event


class Claims:
    """The holders of this process's uploads (a per-process lock: run tus behind one worker
    or sticky routing)."""

    def __init__(self) -> None:
        self._active: dict[str, Claim] = {}

    def held(self) -> frozenset[str]:
        """The ids of the uploads held now."""
        return frozenset(self._active)

    @contextlib.asynccontextmanager
    async def hold(self, upload_id: str) -> AsyncIterator[Claim]:
        """Hold ``upload_id`` exclusively, cancelling (and awaiting) a running holder first.

        :class:`TimeoutError` if a holder does not let go within :data:`CLAIM_WAIT` seconds.
        The claim is released on leaving, however the block ends."""
        while (current := self._active.get(upload_id)) is not None:
            current.scope.cancel()
            with anyio.fail_after(CLAIM_WAIT):
                await current.released.wait()
        claim = Claim(anyio.CancelScope(), anyio.Event())
        self._active[upload_id] = claim
        try:
            yield claim
        finally:
            if self._active.get(upload_id) is claim:
                del self._active[upload_id]
            claim.released.set()

    async def interrupt_all(self) -> int:
        """Cancel every holder's scope and wait until each has let go; how many there were."""
        claims = list(self._active.values())
        for claim in claims:
            claim.scope.cancel()
        for claim in claims:
            await claim.released.wait()
        return len(claims)
