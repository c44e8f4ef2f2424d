"""Shared Powertools logger and metrics; names and namespaces come from POWERTOOLS_* variables.

No X-Ray SDK: importing it costs about 0.45 s of cold start per function (measured with
`python -X importtime`), more than the rest of a handler. Lambda's active tracing still records each
invocation's segment; structured logs carry the correlation id across the pipeline.
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="billing-sync")
metrics = Metrics(namespace="BillingSync", service="billing-sync")
