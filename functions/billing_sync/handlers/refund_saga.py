"""Step Functions task: one step of the refund saga (`task` names it; `execution` is the state so far).

A raised error reaches the state machine under its class name, where Retry (ErpTransientError) and Catch
(the rest, then compensation and the exception store) decide what happens next.

The same function hears, from an EventBridge rule, how each saga execution ended when it ended FAILED,
TIMED_OUT or ABORTED: one that could not record its outcome is parked (RefundSaga.record_ended). EventBridge
invokes it asynchronously; an event that fails every retry goes to FailedInvocations.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.refund_saga import refund_saga
from billing_sync.domain.refunds import EXECUTION_STATUS_CHANGE
from billing_sync.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if event.get("detail-type") == EXECUTION_STATUS_CHANGE:
        detail = event["detail"]
        result = refund_saga().record_ended(detail)
        logger.info(
            "refund saga execution ended",
            extra={"execution": detail.get("name"), "status": detail.get("status"), "result": result},
        )
        return result
    result = refund_saga().run(event["task"], event["execution"])
    logger.info("refund saga step done", extra={"task": event["task"], "result": result})
    return result
