"""Releasing what waits: events held by the name of a key go back to the posting queue once it exists."""

from __future__ import annotations

from collections.abc import Iterable

from billing_sync.domain.ports import PostingQueue, WaitingRoom


def release_waiters(keys: Iterable[str], *, waiting: WaitingRoom | None, requeue: PostingQueue | None) -> int:
    """Requeues every event waiting for one of `keys` and drops it from the room; returns how many."""
    if waiting is None or requeue is None:
        return 0
    released = 0
    for key in keys:
        for waiter in waiting.waiting_for(key):
            requeue.requeue(waiter.event)
            waiting.drop(key, waiter.event_id)
            released += 1
    return released
