"""Scheduled: post again every event held in the waiting room.

An event whose dependency has posted meanwhile posts now (a release that was missed); one past the
wait horizon is parked as DEPENDENCY_PENDING naming what it waited for; the rest stay held.
"""

from __future__ import annotations

from collections import Counter

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.posting import posting_service
from billing_sync.observability import logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict[str, int]:
    counts = Counter(result.status.value for result in posting_service().sweep())
    for status, count in counts.items():
        metrics.add_metric(name=f"Swept{status.title()}", unit=MetricUnit.Count, value=count)
    logger.info("waiting room swept", extra={"outcomes": dict(counts)})
    return dict(counts)
