"""Scheduled (the 2nd of each month): reconcile the previous month, every entity, and publish the reports.

`{"period": "YYYY-MM"}` (and optionally `"entity": "US01"`) reconciles that period instead: a re-run or a
catch-up. Without a period the month before the schedule's `scheduled_time` (else now, UTC) is reconciled.
After the run its KPIs (differences by class, deferred revenue variance) are published as the KPI function's metrics.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator

from billing_sync.composition.aws import utc_now
from billing_sync.composition.reconciliation import previous_period, publish_reconciliation_kpis, run_reconciliation
from billing_sync.observability import logger, metrics

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ENTITY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    period: str | None = None
    entity: str | None = None
    scheduled_time: AwareDatetime | None = None

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None and not _PERIOD.match(value):
            raise ValueError("period must be YYYY-MM")
        return value

    @field_validator("entity")
    @classmethod
    def _entity(cls, value: str | None) -> str | None:
        if value is not None and not _ENTITY.match(value):
            raise ValueError("entity must be a legal entity code")
        return value

    def target_period(self, now: datetime) -> str:
        return self.period or previous_period(self.scheduled_time or now)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ReconcileRequest.model_validate(event or {})
    result = run_reconciliation(request.target_period(utc_now()), request.entity)
    for cls, count in result["documents"].items():
        metrics.add_metric(name=f"Reconciliation_{cls}", unit=MetricUnit.Count, value=count)
    breaks = sum(1 for control in result["controls"] if control["variance"])
    metrics.add_metric(name="ReconciliationControlBreaks", unit=MetricUnit.Count, value=breaks)
    kpis = publish_reconciliation_kpis(result)
    log = logger.info if result["billing_side_built"] else logger.warning
    log(
        "reconciled" if result["billing_side_built"] else "reconciled the ERP side only: no billing extract builder",
        extra={"period": result["period"], "entity": result["entity"], "documents": result["documents"], "kpis": kpis},
    )
    return result
