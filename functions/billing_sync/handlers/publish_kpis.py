"""Hourly schedule -> finance KPIs as CloudWatch metrics (Powertools EMF), one blob per legal entity.

The event may carry a reconciliation result (`{"reconciliation": {"counts": {...}, "deferred_closing":
{...}, "legal_entity": ...}}`) for the variance and difference KPIs; the schedule's own event has none.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.kpis import kpi_reader, now
from billing_sync.domain.kpis import KPI_NAMESPACE_DIMENSION, kpi_metrics
from billing_sync.observability import logger, metrics


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict[str, Any]:
    results = kpi_reader().compute(now(), event.get("reconciliation"))
    emitted = 0
    for entity in results:
        for point in kpi_metrics(entity):
            with single_metric(
                name=point.name,
                unit=MetricUnit(point.unit),
                value=point.value,
                namespace=metrics.namespace,
                default_dimensions={
                    **metrics.default_dimensions,
                    # Metrics adds `service` to its own blobs; a single metric must name it (the alarms read it).
                    "service": str(metrics.service),
                    KPI_NAMESPACE_DIMENSION: entity.legal_entity,
                },
            ) as metric:
                for name, value in point.dimensions.items():
                    metric.add_dimension(name=name, value=value)
            emitted += 1
    logger.info("KPIs published", extra={"entities": [e.legal_entity for e in results], "metrics": emitted})
    return {"entities": len(results), "metrics": emitted}
