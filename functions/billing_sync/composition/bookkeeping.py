"""Composition root of the Bookkeeper every posting function shares: the ledger, the rate table and the
posting calendar, both kept in the master-data table."""

from __future__ import annotations

from functools import cache

from billing_sync.composition.aws import aws_client
from billing_sync.composition.posting import erp_client
from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.mapping import AccountMapping
from billing_sync.settings import posting_settings
from billing_sync.state.periods import DynamoPeriodCalendar
from billing_sync.state.rates import DynamoRateTable


@cache
def bookkeeper() -> Bookkeeper:
    settings = posting_settings()
    dynamodb = aws_client("dynamodb")
    return Bookkeeper(
        mapping=AccountMapping.model_validate_json(settings.mapping_file.read_bytes()),
        erp=erp_client(),
        rates=DynamoRateTable(dynamodb, settings.master_data_table_name),
        periods=DynamoPeriodCalendar(dynamodb, settings.master_data_table_name),
    )
