"""Bench of the posting path: a batch against one record with a slow ERP, and DynamoDB calls per posted event.

    python -c 'import json; from billing_sync_ops.bench_posting import run; print(json.dumps(run(), indent=1))'

`batch10_over_single`: the posting handler (the real one, its composition root, moto holding the stack's
resources) with the ERP behind a wrapper that sleeps `erp_latency_seconds` before every call; the median
wall time of SQS batches of 10 independent invoices over the median of batches of 1 invoice, in one run.
`ddb_writes_per_posted_event` / `ddb_round_trips_per_posted_event`: every DynamoDB call (round trip) and
write request of the posting service per posted invoice and payment (bench.count_ddb_writes), as the
stack composes the posting function; `ddb_round_trips_by_release` gives both ways of releasing what waits
for a new document: on the posting path ("inline") or by the release function on the ledger stream.

    python -m billing_sync_ops.bench_posting --round-trips   # only the counted part, in seconds
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from unittest import mock

from billing_sync_ops.bench import (
    ACCOUNT,
    REGION,
    canonical_details,
    count_ddb_writes,
    discarded_stdout,
    posting_batches,
    posting_stack,
    stripe_mix,
)
from billing_sync_ops.lambda_runtime import LocalLambdaContext

ERP_LATENCY_SECONDS = 0.1
STATE_LATENCY_SECONDS = 0.005  # a DynamoDB request in region, single-digit milliseconds
BATCH_SIZE = 10


class SleepingErpClient:
    """Any ErpClient, each call `latency_seconds` slower: an ERP across the network, without the network."""

    def __init__(self, inner: Any, latency_seconds: float) -> None:
        self._inner = inner
        self._latency = latency_seconds

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self._latency)
            return attribute(*args, **kwargs)

        return slow


@contextmanager
def slow_erp(latency_seconds: float) -> Iterator[None]:
    """The posting composition root's ERP (posting service and bookkeeper) behind SleepingErpClient."""
    from billing_sync.composition import bookkeeping, posting

    real: Callable[[], Any] = posting.erp_client

    @cache
    def erp_client() -> SleepingErpClient:
        return SleepingErpClient(real(), latency_seconds)

    with mock.patch.object(posting, "erp_client", erp_client), mock.patch.object(bookkeeping, "erp_client", erp_client):
        yield


@contextmanager
def network_state(erp_latency_seconds: float, state_latency_seconds: float) -> Iterator[None]:
    """The handler's posting service on in-memory stores that wait like DynamoDB, and an ERP that waits too.

    moto answers in this process with CPU (and the GIL) where DynamoDB answers over the network, so on
    moto a batch's records queue for the interpreter, not for the ERP; this backend keeps the waits.
    """
    from datetime import UTC, datetime, timedelta

    from billing_sync.domain.bookkeeping import Bookkeeper
    from billing_sync.domain.mapping import AccountMapping
    from billing_sync.domain.posting import PostingService
    from billing_sync.handlers import post_to_erp
    from billing_sync.settings import DEFAULT_MAPPING_FILE
    from billing_sync_ops.in_memory.erp import InMemoryErpClient
    from billing_sync_ops.in_memory.rates import sample_rate_table
    from billing_sync_ops.in_memory.stores import (
        InMemoryExceptionQueue,
        InMemoryLineageStore,
        InMemoryMasterDataStore,
        InMemoryPostingQueue,
        InMemoryWaitingRoom,
    )

    mapping = AccountMapping.model_validate_json(DEFAULT_MAPPING_FILE.read_bytes())
    erp: Any = SleepingErpClient(InMemoryErpClient(), erp_latency_seconds)
    state: Callable[[Any], Any] = lambda store: SleepingErpClient(store, state_latency_seconds)  # noqa: E731
    service = PostingService(
        erp=erp,
        lineage=state(InMemoryLineageStore()),
        master_data=state(InMemoryMasterDataStore()),
        exceptions=state(InMemoryExceptionQueue()),
        mapping=mapping,
        clock=lambda: datetime.now(UTC),
        claim_lease=timedelta(seconds=90),
        waiting_room=state(InMemoryWaitingRoom()),
        requeue=state(InMemoryPostingQueue()),
        bookkeeper=Bookkeeper(mapping=mapping, erp=erp, rates=sample_rate_table()),
        claim_documents=False,  # as composed for the ledger: the fake creates by external id under a lock
    )
    with mock.patch.object(post_to_erp, "posting_service", lambda: service):
        yield


def measure_batch_parallelism(
    runs: int = 3,
    latency_seconds: float = ERP_LATENCY_SECONDS,
    *,
    backend: str = "network",
) -> dict[str, Any]:
    """Median wall time of a batch of BATCH_SIZE independent invoices over that of a batch of one.

    `backend` "network": state stores answering after STATE_LATENCY_SECONDS; "moto": moto in process.
    """
    customers, invoices, _ = stripe_mix("par", 1 + runs + runs * BATCH_SIZE)
    with contextlib.ExitStack() as stack:
        stack.enter_context(posting_stack())
        if backend == "moto":
            stack.enter_context(slow_erp(latency_seconds))
        else:
            stack.enter_context(network_state(latency_seconds, STATE_LATENCY_SECONDS))
        from billing_sync.handlers.post_to_erp import lambda_handler

        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing-sync-posting-bench"
        context = LocalLambdaContext("PostToErpFunction", 60)
        details = canonical_details(invoices)
        singles = [posting_batches([detail], queue_arn)[0] for detail in details[1 : 1 + runs]]
        batches = [
            posting_batches(details[start : start + BATCH_SIZE], queue_arn)[0]
            for start in range(1 + runs, len(details), BATCH_SIZE)
        ]

        def timed(batch: dict[str, Any]) -> float:
            started = time.perf_counter()
            response = lambda_handler(batch, context)
            elapsed = time.perf_counter() - started
            if response["batchItemFailures"]:
                raise RuntimeError(f"posting failed: {response}")
            return elapsed

        with discarded_stdout():
            for batch in posting_batches(canonical_details(customers), queue_arn):
                lambda_handler(batch, context)
            timed(posting_batches(details[:1], queue_arn)[0])  # warm: composition, clients, caches
            single = [timed(batch) for batch in singles]
            batch10 = [timed(batch) for batch in batches]
    single_s, batch_s = statistics.median(single), statistics.median(batch10)
    return {
        "batch10_over_single": round(batch_s / single_s, 3),
        "single_record_seconds": round(single_s, 3),
        "batch10_seconds": round(batch_s, 3),
    }


@contextmanager
def release_on_ledger_stream(enabled: bool) -> Iterator[None]:
    """The posting composition with `release_on_ledger_stream` set, whatever the stack's environment says."""
    from billing_sync.composition import posting
    from billing_sync.settings import PostingSettings

    real: Callable[[], PostingSettings] = posting.posting_settings

    def settings() -> PostingSettings:
        return real().model_copy(update={"release_on_ledger_stream": enabled})

    with mock.patch.object(posting, "posting_settings", settings):
        yield


def count_round_trips(invoices: int = 50) -> dict[str, Any]:
    """DynamoDB write requests and calls (round trips) per posted event, per document kind."""
    counted = _round_trips(invoices)
    by_release = {}
    for name, enabled in (("inline", False), ("ledger_stream", True)):
        with release_on_ledger_stream(enabled):
            variant = _round_trips(invoices)
        by_release[name] = {key: value for key, value in variant.items() if key.startswith("ddb_round_trips")}
    return {**counted, "ddb_round_trips_by_release": by_release}


def _round_trips(invoices: int) -> dict[str, Any]:
    counted = count_ddb_writes(invoices)
    calls = counted["aws_calls_breakdown"]

    def ddb_calls(kind: str) -> int:
        return sum(count for name, count in calls[kind].items() if name.startswith("dynamodb."))

    posted = 2 * invoices
    return {
        "ddb_writes_per_posted_event": counted["ddb_writes_per_posted_event"],
        "ddb_round_trips_per_posted_event": round((ddb_calls("invoice") + ddb_calls("payment")) / posted, 4),
        "ddb_round_trips_per_invoice": round(ddb_calls("invoice") / invoices, 4),
        "ddb_round_trips_per_payment": round(ddb_calls("payment") / invoices, 4),
        "ddb_round_trips_per_customer_upsert": round(ddb_calls("customer") / counted["customers"], 4),
        "ddb_writes_per_invoice": counted["ddb_writes_per_invoice"],
        "ddb_writes_per_payment": counted["ddb_writes_per_payment"],
        "ddb_writes_per_customer_upsert": counted["ddb_writes_per_customer_upsert"],
        "posting_ddb_calls_breakdown": calls,
    }


def run(*, runs: int = 3, invoices: int = 50) -> dict[str, Any]:
    """The posting bench keys: batch10_over_single, ddb_writes_per_posted_event, ddb_round_trips_per_posted_event."""
    network = measure_batch_parallelism(runs)
    on_moto = measure_batch_parallelism(runs, backend="moto")
    return {
        **network,
        "batch10_over_single_on_moto": on_moto["batch10_over_single"],
        "single_record_seconds_on_moto": on_moto["single_record_seconds"],
        "batch10_seconds_on_moto": on_moto["batch10_seconds"],
        "erp_latency_seconds": ERP_LATENCY_SECONDS,
        "state_latency_seconds": STATE_LATENCY_SECONDS,
        "batch_runs": runs,
        **count_round_trips(invoices),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round-trips", action="store_true", help="only the counted DynamoDB calls (no timing)")
    parser.add_argument("--invoices", type=int, default=50)
    arguments = parser.parse_args()
    figures = count_round_trips(arguments.invoices) if arguments.round_trips else run(invoices=arguments.invoices)
    print(json.dumps(figures, indent=1))
