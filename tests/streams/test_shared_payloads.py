"""A broadcast's `next` payload is encoded once and spliced per subscription, byte for byte the same."""

from __future__ import annotations

from gateway.web.graphql_view import SharedPayloads, encode_json


def test_the_spliced_message_is_the_one_encode_json_gives() -> None:
    shared = SharedPayloads(size=2)
    data = {"pointsActivity": {"id": "6a1f", "kind": "GRANT", "points": 10, "note": '积分 "quoted"'}}
    for op_id in ("1", "sub-\u00e9", 'with"quote'):
        message = {"id": op_id, "type": "next", "payload": {"data": data}}
        assert shared.message(message) == encode_json(message).decode()
    assert len(shared._texts) == 1  # one encoding for all three subscriptions


def test_an_equal_but_different_result_is_encoded_on_its_own() -> None:
    shared = SharedPayloads(size=2)
    first, second = {"x": {"n": 1}}, {"x": {"n": 2}}
    assert (
        shared.message({"id": "1", "type": "next", "payload": {"data": first}})
        == '{"id":"1","type":"next","payload":{"data":{"x":{"n":1}}}}'
    )
    second["x"]["n"] = 1  # equal content, other object: still its own entry
    shared.message({"id": "1", "type": "next", "payload": {"data": second}})
    shared.message({"id": "1", "type": "next", "payload": {"data": {"y": 1}}})
    assert len(shared._texts) == 2  # bounded


def test_other_messages_are_left_to_the_plain_encoder() -> None:
    shared = SharedPayloads()
    assert shared.message({"type": "connection_ack"}) is None
    assert shared.message({"id": "1", "type": "complete"}) is None
    with_errors = {"id": "1", "type": "next", "payload": {"data": {"a": 1}, "errors": [{"message": "x"}]}}
    assert shared.message(with_errors) is None
    assert shared.message({"id": "1", "type": "next", "payload": {"data": None}}) is None
