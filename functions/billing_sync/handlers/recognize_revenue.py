"""Scheduled (the 1st of each month): release the deferred revenue of every month that has ended.

`{"through": "YYYY-MM-DD"}` runs through that day (a catch-up or a re-run); without it the job runs through
the last day of the previous month in UTC. A month already released is found, not posted again, so a
retried or repeated invocation is harmless. A `through` that has not passed yet is refused: it would
release revenue for days not yet served.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, field_validator

from billing_sync.composition.aws import utc_now
from billing_sync.composition.recognition import recognition_service, source_currency
from billing_sync.observability import logger, metrics

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RecognitionRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    through: date | None = None

    @field_validator("through", mode="before")
    @classmethod
    def _iso_day(cls, value: object) -> object:
        if value is not None and not (isinstance(value, str) and _ISO_DAY.match(value)):
            raise ValueError("through must be a day as YYYY-MM-DD")
        return value


def _through(request: RecognitionRequest, today: date) -> date:
    if request.through is None:
        return today.replace(day=1) - timedelta(days=1)
    if request.through >= today:
        raise ValueError(f"through {request.through} has not passed yet (today is {today} UTC)")
    return request.through


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    through = _through(RecognitionRequest.model_validate(event or {}), utc_now().date())
    releases = recognition_service().run(through)
    created = [r for r in releases if r.created]
    amounts: Counter[str] = Counter()
    currencies: dict[str, str | None] = {}
    for release in created:
        if release.source not in currencies:
            currencies[release.source] = source_currency(release.source)
        amounts[currencies[release.source] or "unknown"] += release.amount
    result = {
        "through": through.isoformat(),
        "releases": len(created),
        "already_posted": len(releases) - len(created),
        "amount_by_currency": dict(amounts),
    }
    metrics.add_metric(name="RevenueReleases", unit=MetricUnit.Count, value=len(created))
    logger.info("deferred revenue released", extra=result)
    return result
