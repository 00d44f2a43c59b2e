"""End to end, the Responses API: the real `openai` SDK (`client.responses`) against a live
server on the real SmolLM2 import (with the qwen tool format): plain, streamed through the
SDK's stream helper, function tools and a function_call_output round trip, text.format
json_schema, previous_response_id over three turns (reusing the prefix cache),
retrieve/input_items/delete, a Codex CLI request body, the API key, /metrics, and a bounded
schemathesis run over the new operations. Bodies and events are held to OpenAI's schemas."""
from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
import requests
from pydantic import BaseModel, Field

from testkit.live import LiveServer
from tests.helpers import assert_schema, schemathesis_run, sse_events

pytestmark = pytest.mark.e2e

KEY = "sk-responses-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "smollm2-qwen"
QUESTION = "What is the capital of France?"
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                          "required": ["city"], "additionalProperties": False}}
CODEX_BODY = Path(__file__).parent / "reference" / "codex_responses_request.json"


@pytest.fixture(scope="module")
def live(tmp_path_factory, smollm2_dir):
    root = tmp_path_factory.mktemp("responses")
    models = {"default": MODEL, "models": [
        {"id": MODEL, "source": {"path": str(smollm2_dir)}, "context_length": 2048, "tool_format": "qwen_tool_call"},
    ]}
    with LiveServer(root, models, env={"MLX_SERVER_API_KEY": KEY, "MLX_SERVER_PRELOAD": MODEL}).start() as server:
        yield server


@pytest.fixture(scope="module")
def client(live):
    return live.openai(api_key=KEY, timeout=300)


def create(client, **kw):
    """One response through the SDK, greedy and short unless `kw` says otherwise; the raw
    body is held to the schema and must be what the SDK parsed."""
    raw = client.responses.with_raw_response.create(**{"model": MODEL, "temperature": 0, "max_output_tokens": 24,
                                                       "input": QUESTION, **kw})
    body = raw.http_response.json()
    assert_schema(body, "openai/Response")
    response = raw.parse()
    assert response.id == body["id"] and response.output_text == body["output_text"]
    return response


def stream_events(live, **body) -> list[dict]:
    """POST with stream: true; every event held to its schema, sequence numbers consecutive."""
    with requests.post(f"{live.url}/v1/responses", headers=AUTH, stream=True, timeout=300,
                       json={"model": MODEL, "stream": True, **body}) as response:
        assert response.status_code == 200, response.text
        events = [data for _, data in sse_events(response.text)]
    for event in events:
        assert_schema(event, "openai/ResponseStreamEvent")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_plain_answer(client, live):
    response = create(client)
    assert response.object == "response" and response.model == MODEL
    assert response.status in ("completed", "incomplete") and "Paris" in response.output_text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    row = live.log_rows()[-1]
    assert (row["endpoint"], row["request_id"], row["status_code"]) == ("/v1/responses", response.id, 200)
    assert row["completion_tokens"] == response.usage.output_tokens


def test_sdk_stream_helper_matches_the_whole_answer(client, live):
    whole = create(client, store=False)
    with client.responses.stream(model=MODEL, input=QUESTION, temperature=0, max_output_tokens=24,
                                 store=False) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == whole.output_text  # greedy: the same tokens
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    events = stream_events(live, input=QUESTION, temperature=0, max_output_tokens=24, store=False)
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == whole.output_text == events[-1]["response"]["output_text"]
    assert live.log_rows()[-1]["stream"] == 1


def test_function_call_and_its_output_round_trip(client):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    called = create(client, input=ask, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
                    max_output_tokens=48)
    (call,) = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    # stateless, as Codex and the Agents SDK with store=False: the whole history again
    history = [*ask, *(item.model_dump(exclude_none=True) for item in called.output),
               {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}]
    answer = create(client, input=history, tools=[WEATHER], tool_choice="none", store=False, max_output_tokens=32)
    assert answer.output[0].type == "message" and answer.output_text
    # and stored: the output alone, after previous_response_id
    followed = create(client, input=[{"type": "function_call_output", "call_id": call.call_id,
                                      "output": "Sunny, 21 C"}],
                      previous_response_id=called.id, tools=[WEATHER], tool_choice="none", max_output_tokens=32)
    assert followed.output_text == answer.output_text
    assert followed.usage.input_tokens == answer.usage.input_tokens


def test_streamed_forced_call_events(live):
    events = stream_events(live, input="Weather in Oslo?", tools=[WEATHER], tool_choice="required",
                           parallel_tool_calls=False, temperature=0, max_output_tokens=64)
    (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert deltas == done["arguments"] and done["name"] == "get_weather"
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][-1]["arguments"] == done["arguments"]


class City(BaseModel):
    name: str = Field(max_length=30)
    country: str = Field(max_length=30)


def test_text_format_json_schema(client):
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 30}},
              "required": ["capital"], "additionalProperties": False}
    response = create(client, text={"format": {"type": "json_schema", "name": "capital", "strict": True,
                                               "schema": schema}}, max_output_tokens=40)
    assert set(json.loads(response.output_text)) == {"capital"}
    parsed = client.responses.parse(model=MODEL, input="Name a city in Europe.", text_format=City,
                                    temperature=0, max_output_tokens=60)
    assert isinstance(parsed.output_parsed, City)


def test_previous_response_id_over_three_turns(client, live):
    first = create(client, input="My name is Ada. Say hello.", instructions="Answer in one sentence.")
    second = create(client, input="What is my name?", previous_response_id=first.id)
    third = create(client, input="Say it again.", previous_response_id=second.id)
    assert second.usage.input_tokens > first.usage.input_tokens
    assert third.usage.input_tokens > second.usage.input_tokens
    # each turn's prompt starts with the last one's, answer included: the prefix cache has it
    assert second.usage.input_tokens_details.cached_tokens > 0
    assert third.usage.input_tokens_details.cached_tokens > second.usage.input_tokens_details.cached_tokens
    assert client.responses.retrieve(third.id).output_text == third.output_text
    items = client.responses.input_items.list(third.id)
    assert [item.content[0].text for item in items.data] == ["Say it again."]
    assert client.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    again = create(client, input="Say it again.", previous_response_id=second.id)
    assert again.output_text == third.output_text  # a later turn keeps its own history
    metrics = requests.get(f"{live.url}/metrics", headers=AUTH, timeout=30).text
    assert 'mlx_server_requests_total{endpoint="/v1/responses/{response_id}"' in metrics


def test_codex_cli_request_body(live):
    """Codex's second request of a turn, with a command's output: the stream it reads."""
    body = {key: value for key, value in json.loads(CODEX_BODY.read_text()).items() if key != "$comment"}
    events = stream_events(live, **{**body, "model": MODEL, "max_output_tokens": 32})
    final = events[-1]["response"]
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    assert final["store"] is False and final["usage"]["input_tokens"] > 300
    assert [e["type"] for e in events if e["type"].startswith("response.output_item")][-1] == \
        "response.output_item.done"
    assert requests.get(f"{live.url}/v1/responses/{final['id']}", headers=AUTH, timeout=30).status_code == 404


def test_errors_through_the_sdk(client, live):
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    assert bad.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_nope")
    with pytest.raises(openai.AuthenticationError):
        live.openai(api_key="wrong").responses.create(model=MODEL, input="hi")
    rows = live.log_rows()[-3:]
    assert [r["status_code"] for r in rows] == [400, 404, 401]


def test_schemathesis_finds_no_server_errors(live, tmp_path):
    """Schema-driven fuzzing of the /v1/responses operations, bounded: no 5xx, each logged.
    Positive cases name the model with max_output_tokens capped (so they generate, briefly);
    negative ones name no model, so what slips past validation ends in a 404."""
    before = len(live.log_rows())
    schema = requests.get(f"{live.url}/v1/openapi.json", headers=AUTH, timeout=30).json()
    create = schema["components"]["schemas"]["CreateResponse"]
    create["required"] = [*create["required"], "max_output_tokens"]
    request = create["properties"]
    request["max_output_tokens"] = {"type": "integer", "minimum": 1, "maximum": 16}  # never unbounded
    only = ("--include-path-regex", "^/v1/responses")
    request["model"] = {"type": "string", "enum": [MODEL]}
    positive = schemathesis_run(live, schema, tmp_path, "positive", 15, key=KEY, extra=only)
    request["model"] = {"type": "string", "enum": ["no-such-model"]}
    negative = schemathesis_run(live, schema, tmp_path, "negative", 25, key=KEY, extra=only)
    for run in (positive, negative):
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    rows = live.log_rows()[before:]
    assert len(rows) > 40 and {r["endpoint"] for r in rows} >= {"/v1/responses"}
    assert not [r for r in rows if r["status_code"] >= 500]


def test_logprobs_through_the_sdk(client):
    response = create(client, top_logprobs=2, include=["message.output_text.logprobs"], max_output_tokens=8)
    part = response.output[0].content[0]
    assert "".join(entry.token for entry in part.logprobs) == part.text
    assert all(len(entry.top_logprobs) == 2 and entry.logprob <= 0 for entry in part.logprobs)
    # greedy: each token is its step's most likely one
    assert all(entry.top_logprobs[0].token == entry.token for entry in part.logprobs)
