"""Re-exported for the tests: the in-memory adapters live in billing_sync_ops.in_memory (the bench uses them too)."""

from billing_sync_ops.in_memory.rates import (
    SAMPLE_RATES_FILE,
    InMemoryRateTable,
    sample_rate_table,
    sample_rates,
)

__all__ = [
    "SAMPLE_RATES_FILE",
    "InMemoryRateTable",
    "sample_rate_table",
    "sample_rates",
]
