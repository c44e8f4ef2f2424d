"""What waits for a document is released from the ledger's stream: the release function, its mapping, its
grants, and the posting functions told not to release inline."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import SynthesisedStack
from tests.infra.test_refund_saga import as_list, statements_of_role
from tests.infra.test_stack import function_by_module, logical_id_of, role_logical_id

pytestmark = pytest.mark.infra


def test_the_release_function_reads_inserted_documents_from_the_ledger_stream(synthesised: SynthesisedStack):
    # GIVEN the release function and its event source mapping
    function_id, function = function_by_module(synthesised, "release_waiting")
    ledger_id = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    [mapping] = [
        m["Properties"]
        for m in synthesised.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]

    # THEN it reads the ledger's stream, only inserted documents, bisecting and parking what keeps failing
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [ledger_id, "StreamArn"]}
    [pattern] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "DOC#"}]}}}}
    assert mapping["BisectBatchOnFunctionError"] is True
    exception_queue = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [exception_queue, "Arn"]}
    # AND it knows the waiting room and the posting queue it sends released events to
    variables = function["Properties"]["Environment"]["Variables"]
    assert {"WAITING_ROOM_TABLE_NAME", "POSTING_QUEUE_URL"} <= set(variables)


def test_the_release_function_only_queries_and_deletes_waiters_and_sends_to_the_posting_queue(synthesised):
    _, function = function_by_module(synthesised, "release_waiting")
    statements = statements_of_role(synthesised, role_logical_id(function))
    waiting_room = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesWaitingRoom")
    posting_queue = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelinePostingQueue")
    ledger = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")

    on_waiting_room = {a for s in statements if waiting_room in json.dumps(s["Resource"]) for a in as_list(s["Action"])}
    assert on_waiting_room == {"dynamodb:Query", "dynamodb:DeleteItem"}
    on_ledger = {a for s in statements if ledger in json.dumps(s["Resource"]) for a in as_list(s["Action"])}
    # only the stream of the ledger, never its items
    assert not {a for a in on_ledger if a in {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"}}
    # AND it sends released events to the posting queue, and a record it cannot release to the exception queue
    exception_queue = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")
    sends = [s for s in statements if "sqs:SendMessage" in as_list(s["Action"])]
    assert sorted(json.dumps(s["Resource"]) for s in sends) == sorted(
        json.dumps({"Fn::GetAtt": [queue, "Arn"]}) for queue in (posting_queue, exception_queue)
    )


@pytest.mark.parametrize("module", ["post_to_erp", "sweep_waiting_room"])
def test_posting_leaves_releases_to_the_stream(synthesised, module):
    _, function = function_by_module(synthesised, module)
    assert function["Properties"]["Environment"]["Variables"]["RELEASE_ON_LEDGER_STREAM"] == "true"
