"""One contract per response: what /v1/models and a chat completion return has exactly the
keys /v1/openapi.json documents, because the documenting serializers render them."""
import json

import pytest


pytestmark = pytest.mark.django_db


@pytest.fixture
def schemas(client):
    return json.loads(client.get("/v1/openapi.json").content)["components"]["schemas"]


@pytest.fixture
def scripted(models_yaml, serve, tmp_path):
    models_yaml("qwen-like", {"config.json": json.dumps({"max_position_embeddings": 512}).encode()},
                aliases=["q"], tool_format="qwen_tool_call", ttl=2)
    models_yaml("absent", source={"path": str(tmp_path / "none")})
    serve(["<tool_call>\n", '{"name": "f", "arguments": {}}', "\n</tool_call>"])


def documented(schemas, name):
    return set(schemas[name]["properties"])


def test_every_model_key_is_documented_and_every_documented_key_is_sent(client, schemas, scripted):
    listing = client.get("/v1/models").json()
    assert set(listing) == documented(schemas, "ModelList")
    qwen, absent = listing["data"]
    assert set(qwen) == set(absent) == documented(schemas, "Model")
    assert len(documented(schemas, "Model")) == 17
    assert qwen["ttl"] == 2 and isinstance(qwen["ttl"], int) and qwen["context_length"] == 512
    assert (qwen["available"], qwen["unavailable_reason"]) == (True, None)
    assert absent["available"] is False and "config.json" in absent["unavailable_reason"]
    assert client.get("/v1/models/q").json() == qwen


def test_a_chat_completion_has_the_documented_keys(client, schemas, scripted):
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = client.post("/v1/chat/completions", content_type="application/json", data=json.dumps(
        {"model": "qwen-like", "messages": [{"role": "user", "content": "hi"}], "tools": tools})).json()
    assert set(body) == documented(schemas, "ChatCompletionResponse")
    (choice,) = body["choices"]
    assert set(choice) == documented(schemas, "Choice")
    # reasoning_content / reasoning: only from a thinking model (tests/test_reasoning.py)
    assert set(choice["message"]) == documented(schemas, "AssistantMessage") - {"reasoning_content", "reasoning"}
    assert choice["message"]["content"] is None and choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert set(call) == documented(schemas, "ToolCall") and call["function"] == {"name": "f", "arguments": "{}"}
    assert set(body["usage"]) == documented(schemas, "Usage")


def test_a_message_without_calls_has_no_tool_calls_key(client, schemas, scripted, serve):
    serve(["Hi ", " there "])
    body = client.post("/v1/chat/completions", content_type="application/json", data=json.dumps(
        {"model": "qwen-like", "messages": [{"role": "user", "content": "hi"}]})).json()
    message = body["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Hi  there ", "refusal": None}
    assert body["choices"][0]["logprobs"] is None
    assert body["system_fingerprint"].startswith("fp_") and len(body["system_fingerprint"]) == 13
