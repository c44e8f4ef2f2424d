"""Releasing what waits for documents the ERP created, told by its change stream (the ledger table's).

The stream carries each created document after its write, so a waiter that held before the write is
found, and one that holds after it finds the document when it looks again: nothing is missed, and the
posting path spends no round trip on the waiting room.
"""

from __future__ import annotations

from billing_sync.domain.journal import ErpDocument
from billing_sync.domain.ports import PostingQueue, WaitingRoom
from billing_sync.domain.posting.resolver import released_by
from billing_sync.domain.waiting import release_waiters


class DocumentRelease:
    def __init__(self, *, waiting: WaitingRoom, requeue: PostingQueue) -> None:
        self._waiting = waiting
        self._requeue = requeue

    def created(self, document: ErpDocument) -> int:
        """Requeues every event waiting for what `document` provides; returns how many.

        Raises what the waiting room and the queue raise; a retry is harmless (a released event is dropped
        from the room only after it is requeued, and posting it twice is a duplicate)."""
        return release_waiters(released_by(document), waiting=self._waiting, requeue=self._requeue)
