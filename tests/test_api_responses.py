"""The Responses API (/v1/responses) through the API layer, on the scripted backend: the
response object and its stream events held to the official schemas, the items turned into
the engine's messages, tools, text.format, stored responses and previous_response_id, the
bad-input corpus (4xx in the API's error shape, each logged)."""
from __future__ import annotations

import asyncio
import json

import pytest
from django.test import AsyncClient

from inference.models import RequestLog, StoredResponse, ToolCallLog
from tests.helpers import assert_openai_error, assert_schema

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/v1/responses"
MODEL = "qwen-like"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
QWEN_CALL = ["Let me check.", "\n<tool", "_call>\n{\"name\": \"get_weather\", ",
             "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"]


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml(MODEL, tool_format="qwen_tool_call", context_length=4096)
    return serve


def create(client, **body):
    return client.post(URL, data=json.dumps({"model": MODEL, "input": "hi", **body}), content_type="application/json")


EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent", "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent", "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent", "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent", "error": "ResponseErrorEvent",
    "response.reasoning_text.delta": "ResponseReasoningTextDeltaEvent",
    "response.reasoning_text.done": "ResponseReasoningTextDoneEvent",
}


def events(**body) -> list[dict]:
    """The streamed events (each held to ResponseStreamEvent), checked for `event:` lines
    that match their type and for consecutive sequence numbers."""
    async def read():
        response = await AsyncClient().post(URL, content_type="application/json",
                                            data=json.dumps({"model": MODEL, "input": "hi", "stream": True, **body}))
        assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
        return b"".join([chunk async for chunk in response.streaming_content]).decode()

    out = []
    for frame in asyncio.run(read()).strip().split("\n\n"):
        kind, data = frame.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        assert_schema(event, f"openai/{EVENT_SCHEMAS[event['type']]}")  # its member: the precise error
        assert_schema(event, "openai/ResponseStreamEvent")
        out.append(event)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def test_plain_answer_is_a_response_object_and_logged(client, scripted):
    scripted(["Hello", " there."])
    response = create(client, instructions="Be brief.", metadata={"k": "v"})
    body = response.json()
    assert_schema(body, "openai/Response")
    assert body["object"] == "response" and body["status"] == "completed" and body["id"].startswith("resp_")
    (item,) = body["output"]
    assert item["type"] == "message" and item["role"] == "assistant" and item["status"] == "completed"
    assert item["content"][0]["text"] == "Hello there." == body["output_text"]
    assert body["instructions"] == "Be brief." and body["metadata"] == {"k": "v"} and body["error"] is None
    usage = body["usage"]
    assert usage["output_tokens"] == 2
    assert usage["total_tokens"] == usage["input_tokens"] + 2
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    row = RequestLog.objects.get()
    assert (row.endpoint, row.request_id, row.status_code, row.completion_tokens) == (URL, body["id"], 200, 2)
    assert response["x-request-id"] == body["id"]


def test_items_become_the_engine_messages(client, scripted):
    engine = scripted(["ok"])
    items = [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    assert create(client, input=items, instructions="Be brief.", tools=TOOLS).status_code == 200
    (request,) = engine.requests
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert request.tools == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": TOOLS[0]["parameters"]}}]


def test_sampling_fields_reach_the_engine(client, scripted):
    engine = scripted(["a", "b", "c"])
    body = create(client, max_output_tokens=2, temperature=0.5, top_p=0.9).json()
    params = engine.requests[0].params
    assert (params.max_tokens, params.temperature, params.top_p) == (2, 0.5, 0.9)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete" and body["output_text"] == "ab"
    assert_schema(body, "openai/Response")


def test_function_call_output_items_and_log(client, scripted):
    scripted(QWEN_CALL)
    body = create(client, tools=TOOLS).json()
    assert_schema(body, "openai/Response")
    message, call = body["output"]
    assert message["content"][0]["text"] == "Let me check."
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["id"].startswith("fc_")
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    logged = ToolCallLog.objects.get()
    assert (logged.call_id, logged.name) == (call["call_id"], "get_weather")
    assert body["tools"][0]["name"] == "get_weather"


def test_forced_call_and_text_format_are_grammars(client, scripted):
    engine = scripted(["{}"])
    create(client, tools=TOOLS, tool_choice={"type": "function", "name": "get_weather"})
    create(client, text={"format": {"type": "json_schema", "name": "x", "strict": True,
                                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}})
    create(client, text={"format": {"type": "text"}})
    forced, schema, text = engine.requests
    assert forced.params.grammar and schema.params.grammar and text.params.grammar is None


def test_stream_events_in_order(scripted):
    scripted(["Hel", "lo"])
    stream = events()
    kinds = [e["type"] for e in stream]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert "".join(e["delta"] for e in stream if e["type"] == "response.output_text.delta") == "Hello"
    final = stream[-1]["response"]
    assert final["status"] == "completed" and final["output_text"] == "Hello" and final["usage"]["output_tokens"] == 2
    assert stream[2]["item"]["id"] == final["output"][0]["id"] == stream[4]["item_id"]
    assert StoredResponse.objects.get(pk=final["id"]).response == final


def test_streamed_function_call(scripted):
    scripted(QWEN_CALL)
    stream = events(tools=TOOLS)
    kinds = [e["type"] for e in stream]
    call_added = [e for e in stream if e["type"] == "response.output_item.added"][1]
    assert call_added["output_index"] == 1 and call_added["item"]["type"] == "function_call"
    args = "".join(e["delta"] for e in stream if e["type"] == "response.function_call_arguments.delta")
    (done,) = [e for e in stream if e["type"] == "response.function_call_arguments.done"]
    assert json.loads(args) == json.loads(done["arguments"]) == {"city": "Paris"} and done["name"] == "get_weather"
    assert kinds.index("response.output_item.done") < kinds.index("response.function_call_arguments.delta")
    final = stream[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["call_id"] == call_added["item"]["call_id"]


def test_stream_cut_by_max_output_tokens_ends_incomplete(scripted):
    scripted(["a", "b", "c"])
    stream = events(max_output_tokens=1)
    assert stream[-1]["type"] == "response.incomplete"
    assert stream[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_previous_response_id_over_three_turns(client, scripted):
    engine = scripted(["fine"])
    first = create(client, input="one", instructions="Be brief.").json()
    second = create(client, input="two", previous_response_id=first["id"]).json()
    third = create(client, input=[{"role": "user", "content": "three"}], previous_response_id=second["id"]).json()
    assert third["previous_response_id"] == second["id"]
    # instructions are not carried over (as OpenAI); every earlier input and output is
    assert engine.requests[2].messages == [
        {"role": "user", "content": [{"type": "text", "text": "one"}]},
        {"role": "assistant", "content": "fine"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "fine"},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]
    listed = client.get(f"{URL}/{third['id']}/input_items").json()
    assert_schema(listed, "openai/ResponseItemList")
    assert [i["content"][0]["text"] for i in listed["data"]] == ["three"] and listed["has_more"] is False
    assert client.get(f"{URL}/{second['id']}").json() == second


def test_input_items_pages(client, scripted):
    scripted(["ok"])
    items = [{"role": "user", "content": str(i)} for i in range(5)]
    rid = create(client, input=items).json()["id"]
    page = client.get(f"{URL}/{rid}/input_items", {"limit": 2, "order": "asc"}).json()
    assert [i["content"][0]["text"] for i in page["data"]] == ["0", "1"] and page["has_more"]
    rest = client.get(f"{URL}/{rid}/input_items", {"order": "asc", "after": page["last_id"]}).json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["2", "3", "4"] and not rest["has_more"]
    newest = client.get(f"{URL}/{rid}/input_items", {"limit": 1}).json()
    assert newest["data"][0]["content"][0]["text"] == "4"
    assert_openai_error(client.get(f"{URL}/{rid}/input_items", {"limit": 0}), 400, param="limit")


def test_delete_and_store_false(client, scripted):
    scripted(["ok"])
    rid = create(client).json()["id"]
    deleted = client.delete(f"{URL}/{rid}")
    assert deleted.json() == {"id": rid, "object": "response", "deleted": True}
    assert_openai_error(client.get(f"{URL}/{rid}"), 404, code="not_found")
    assert_openai_error(client.delete(f"{URL}/{rid}"), 404, code="not_found")
    assert_openai_error(create(client, previous_response_id=rid), 404, param="previous_response_id")
    unstored = create(client, store=False).json()
    assert unstored["store"] is False
    assert_openai_error(client.get(f"{URL}/{unstored['id']}"), 404)
    assert_openai_error(client.post(f"{URL}/{unstored['id']}"), 405)
    assert [r.status_code for r in RequestLog.objects.order_by("id")] == [200, 200, 404, 404, 404, 200, 404, 405]


BAD = [
    ({"input": 5}, "input"),
    ({"input": [{"type": "computer_call", "id": "x"}]}, "input[0].type"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": ["hi"]}, "input[0]"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user"}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": ""}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "custom", "name": "apply_patch"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools[0].parameters"),
    ({"tools": TOOLS, "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "other"}}, "tool_choice"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema", "name": "bad name!", "schema": {}}}}, "text.format.name"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"not": {}}}}}, "text.format.schema"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": "16"}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"store": "yes"}, "store"),
    ({"metadata": {"k": 1}}, "metadata.k"),
    ({"reasoning": {"effort": "maximal"}}, "reasoning.effort"),
    ({"truncation": "middle"}, "truncation"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"stream_options": {"include_obfuscation": False}}, "stream_options"),
    ({"input": []}, "input"),
]


@pytest.mark.parametrize("body, param", BAD, ids=[p for _, p in BAD])
def test_bad_input_is_a_400_naming_the_param_and_logged(client, scripted, body, param):
    scripted(["never"])
    assert_openai_error(create(client, **body), 400, param=param)
    row = RequestLog.objects.get()
    assert (row.endpoint, row.status_code, row.outcome) == (URL, 400, "error")


def test_unknown_model_and_previous_id_are_404s(client, scripted):
    scripted(["never"])
    assert_openai_error(create(client, model="nope"), 404, code="model_not_found")
    assert_openai_error(create(client, previous_response_id="resp_nope"), 404, param="previous_response_id",
                        code="not_found")
    assert_openai_error(client.get(f"{URL}/resp_nope/input_items"), 404, code="not_found")


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/v1/openapi.json").json()["paths"]
    assert {"post"} <= set(paths[URL]) and {"get", "delete"} <= set(paths[URL + "/{response_id}"])
    assert "get" in paths[URL + "/{response_id}/input_items"]


def test_metrics_label_stored_response_routes_by_pattern(client, scripted):
    from prometheus_client import REGISTRY

    def count(endpoint: str, status: str) -> float:
        return REGISTRY.get_sample_value("mlx_server_requests_total", {
            "endpoint": endpoint, "model": "", "status": status, "outcome": "error"}) or 0.0

    before = count("/v1/responses/{response_id}", "404")
    client.get(f"{URL}/resp_a")
    client.get(f"{URL}/resp_b")
    assert count("/v1/responses/{response_id}", "404") == before + 2


def test_admin_lists_stored_responses(admin_client, scripted):
    scripted(["ok"])
    rid = create(admin_client).json()["id"]
    listing = admin_client.get("/admin/inference/storedresponse/")
    assert listing.status_code == 200 and rid in listing.content.decode()
    assert admin_client.get(f"/admin/inference/storedresponse/{rid}/change/").status_code == 200


THINKING = ["<think>", "\nThe user ", "greets me.", "\n</think>", "\n\n", "Hello", " there!"]


@pytest.fixture
def thinker(models_yaml, serve):
    models_yaml("thinker", reasoning="think_tags", tool_format="qwen_tool_call", context_length=4096)
    return serve(THINKING)


def test_thinking_is_a_reasoning_item_before_the_message(client, thinker):
    body = create(client, model="thinker", reasoning={"effort": "low"}).json()
    assert_schema(body, "openai/Response")
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "The user greets me."}]
    assert body["output_text"] == "Hello there!" == message["content"][0]["text"]
    assert 0 < body["usage"]["output_tokens_details"]["reasoning_tokens"] < body["usage"]["output_tokens"]
    assert thinker.requests[0].template_kwargs["reasoning_effort"] == "low"
    assert body["reasoning"] == {"effort": "low", "summary": None}


def test_streamed_thinking_comes_as_reasoning_text_events(thinker):
    stream = events(model="thinker")
    kinds = [e["type"] for e in stream]
    assert kinds[2] == "response.output_item.added" and stream[2]["item"]["type"] == "reasoning"
    thought = "".join(e["delta"] for e in stream if e["type"] == "response.reasoning_text.delta")
    (done,) = [e for e in stream if e["type"] == "response.reasoning_text.done"]
    assert thought == done["text"] and thought.strip() == "The user greets me."
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    final = stream[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"] and final["output_text"] == "Hello there!"


def test_a_reasoning_item_sent_back_is_not_in_the_prompt(client, thinker):
    first = create(client, model="thinker").json()
    create(client, model="thinker", input="And?", previous_response_id=first["id"])
    assert thinker.requests[1].messages[1] == {"role": "assistant", "content": "Hello there!"}


def test_logprobs_when_include_asks(client, scripted):
    scripted(["Hel", "lo"])
    plain = create(client).json()
    assert plain["output"][0]["content"][0]["logprobs"] == []
    body = create(client, include=["message.output_text.logprobs"], top_logprobs=2).json()
    assert_schema(body, "openai/Response")
    entries = body["output"][0]["content"][0]["logprobs"]
    assert [e["token"] for e in entries] == ["Hel", "lo"]
    for entry in entries:
        assert_schema(entry, "openai/LogProb")
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 2


def test_streamed_text_deltas_carry_their_logprobs(scripted):
    scripted(["Hel", "lo"])
    stream = events(top_logprobs=1)
    deltas = [e for e in stream if e["type"] == "response.output_text.delta"]
    assert [[x["token"] for x in d["logprobs"]] for d in deltas] == [["Hel"], ["lo"]]
    (done,) = [e for e in stream if e["type"] == "response.output_text.done"]
    assert [x["token"] for x in done["logprobs"]] == ["Hel", "lo"]
    assert stream[-1]["response"]["output"][0]["content"][0]["logprobs"] == done["logprobs"]
