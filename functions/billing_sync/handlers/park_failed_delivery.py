"""On-failure destination of the partner function: a delivery Lambda gave up on joins the exception store.

EventBridge invokes the partner function asynchronously; after its retries Lambda hands the failure
record (with the Stripe event as request payload) to this function, which parks it like every other
exception: in the exception queue, indexed in the store, with lineage. If this function fails too, its
own on-failure destination is the exception queue, so the record is still not lost.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.failed_delivery import failed_delivery_recorder
from billing_sync.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    record = failed_delivery_recorder().park(json.dumps(event))
    logger.warning("partner delivery parked", extra={"event_id": record.event_id, "reason": record.reason})
    return {"event_id": record.event_id, "category": record.category}
