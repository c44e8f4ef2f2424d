"""Step Functions task: one step of the refund saga (`task` names it; `execution` is the state so far).

A raised error reaches the state machine under its class name, where Retry (ErpTransientError) and Catch
(the rest, then compensation and the exception store) decide what happens next.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.refund_saga import refund_saga
from billing_sync.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    result = refund_saga().run(event["task"], event["execution"])
    logger.info("refund saga step done", extra={"task": event["task"], "result": result})
    return result
