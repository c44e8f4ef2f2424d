from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from billing_sync.domain.refunds import EXECUTION_STATUS_CHANGE, UNRECORDED_END_STATUSES
from infra.constructs.keys import DataKeys
from infra.constructs.posting_pipeline import (
    EXCEPTIONS_PARKING_ACTIONS,
    LEDGER_POSTING_ACTIONS,
    LINEAGE_POSTING_ACTIONS,
    grant_table_actions,
    suppress_per_action_grant_findings,
)
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory

DEFINITION_FILE = Path(__file__).resolve().parents[1] / "statemachines" / "refund_saga.asl.json"
# The placeholder every Task state of the definition names its Resource with.
TASKS_ARN_SUBSTITUTION = "RefundSagaTasksArn"
TASK_TIMEOUT = Duration.seconds(30)
# EventBridge's own defaults, stated: a day of retries before the event goes to the exception queue.
ENDED_DELIVERY_RETRY_ATTEMPTS = 185
ENDED_DELIVERY_MAX_EVENT_AGE = Duration.hours(24)
# The saga reads a credit note and rates from master data (never writes it) and only releases from the
# waiting room what waited for the refund (query by name, delete).
MASTER_DATA_SAGA_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem")
WAITING_ROOM_SAGA_ACTIONS = ("dynamodb:Query", "dynamodb:DeleteItem")


class RefundSaga(Construct):
    """The refund saga: a STANDARD state machine (the given ASL definition) whose every Task invokes one function.

    The task function runs on the posting function's settings (the same environment) and may use only the
    ledger, lineage, master data, waiting room and exception tables (per action, the ledger append-only) and
    send to the exception and posting queues. The state
    machine may invoke only that function. `started_by` functions are told the state machine ARN and the
    saga's wait settings, and may start executions: that wiring is added to them here, after they exist,
    so the task function never depends on the state machine (which depends on it).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_factory: FunctionFactory,
        tables: StateTables,
        exception_queue: sqs.IQueue,
        posting_queue: sqs.IQueue,
        environment: Mapping[str, str],
        started_by: Sequence[lambda_.Function],
        wait_seconds: int,
        max_waits: int,
        stage: str,
        keys: DataKeys,
    ) -> None:
        super().__init__(scope, construct_id)
        self.task_function = function_factory.create(
            self,
            "RefundSagaTasksFunction",
            handler_module="refund_saga",
            timeout=TASK_TIMEOUT,
            description="Runs one step of the refund saga (load, credit memo, refund, compensate, record)",
            environment=dict(environment),
        )
        for table, actions in (
            (tables.ledger, LEDGER_POSTING_ACTIONS),
            (tables.lineage, LINEAGE_POSTING_ACTIONS),
            (tables.master_data, MASTER_DATA_SAGA_ACTIONS),
            (tables.waiting_room, WAITING_ROOM_SAGA_ACTIONS),
            (tables.exceptions, EXCEPTIONS_PARKING_ACTIONS),
        ):
            grant_table_actions(table, self.task_function, *actions)
        exception_queue.grant_send_messages(self.task_function)
        # Recording a refund releases what waits for it (a payout settling it) back to the posting queue.
        posting_queue.grant_send_messages(self.task_function)
        assert self.task_function.role is not None
        suppress_per_action_grant_findings(self.task_function.role)

        # The vended-logs prefix keeps CloudWatch Logs' account resource policy from growing per log group.
        self.log_group = logs.LogGroup(
            self,
            "RefundSagaLogGroup",
            log_group_name=f"/aws/vendedlogs/states/billing-sync-{stage}-refund-saga",
            retention=function_factory.log_retention,
            encryption_key=keys.logs,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "RefundSaga",
            state_machine_type=sfn.StateMachineType.STANDARD,
            comment="Books a refund (credit memo, refund, lineage) or compensates and records the failed step",
            definition_body=sfn.DefinitionBody.from_file(str(DEFINITION_FILE)),
            definition_substitutions={TASKS_ARN_SUBSTITUTION: self.task_function.function_arn},
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            # Destroyed with the stack: a running execution cannot outlive the task function that goes with it.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.task_function.grant_invoke(self.state_machine)
        NagSuppressions.add_resource_suppressions(
            self.state_machine.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="grant_invoke also allows the task function's versions and aliases (<arn>:*), the "
                    "one function the saga runs.",
                    applies_to=[{"regex": "/^Resource::<RefundSagaRefundSagaTasksFunction.*\\.Arn>:\\*$/g"}],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Log delivery (logs:CreateLogDelivery and the other *LogDelivery / resource-policy "
                    "actions) and X-Ray (PutTraceSegments, GetSamplingRules...) support no resource-level "
                    "permissions, so logging and tracing need Resource '*'.",
                    applies_to=["Resource::*"],
                ),
            ],
            apply_to_children=True,
        )

        # An execution that ends without recording (RecordFailure spent its retries, a timeout, a stop) still
        # holds the refund's claim: the task function hears of it and parks the refund.
        self.ended_rule = events.Rule(
            self,
            "RefundSagaEnded",
            description="Refund saga executions that ended FAILED, TIMED_OUT or ABORTED: park what went unrecorded",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[EXECUTION_STATUS_CHANGE],
                detail={
                    "status": list(UNRECORDED_END_STATUSES),
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.task_function,
                    dead_letter_queue=exception_queue,
                    retry_attempts=ENDED_DELIVERY_RETRY_ATTEMPTS,
                    max_event_age=ENDED_DELIVERY_MAX_EVENT_AGE,
                )
            ],
        )

        for function in started_by:
            function.add_environment("REFUND_SAGA_ARN", self.state_machine.state_machine_arn)
            function.add_environment("SAGA_WAIT_SECONDS", str(wait_seconds))
            function.add_environment("SAGA_MAX_WAITS", str(max_waits))
            self.state_machine.grant_start_execution(function)
