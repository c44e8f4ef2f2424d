"""Re-exported for the tests: the in-memory adapters live in billing_sync_ops.in_memory (the bench uses them too)."""

from billing_sync_ops.in_memory.stores import (
    InMemoryExceptionQueue,
    InMemoryLineageStore,
    InMemoryMasterDataStore,
    InMemoryPostingQueue,
    InMemoryPublisher,
    InMemoryRawArchive,
    InMemoryWaitingRoom,
    RecordingWorkflows,
)

__all__ = [
    "InMemoryExceptionQueue",
    "InMemoryLineageStore",
    "InMemoryMasterDataStore",
    "InMemoryPostingQueue",
    "InMemoryPublisher",
    "InMemoryRawArchive",
    "InMemoryWaitingRoom",
    "RecordingWorkflows",
]
