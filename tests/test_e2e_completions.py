"""/v1/completions end to end: the real `openai` SDK (`client.completions.create`, streamed and
not) against a live server on the real SmolLM2, no mocks; responses held to OpenAI's
CreateCompletionResponse; bad input answered 4xx and logged (SmolLM2 has no FIM tokens, so a
`suffix` is one of them); schemathesis on the endpoint."""
from __future__ import annotations

import json

import openai
import pytest
import requests

from tests import helpers

pytestmark = pytest.mark.e2e

PROMPT = "def fibonacci(n):\n"
SCHEMA = "openai/CreateCompletionResponse"


def post(server, body):
    return requests.post(f"{server.url}/v1/completions", json=body, timeout=300)


def test_the_sdk_continues_a_raw_prompt_whole_and_streamed_alike(server, openai_client, tokenizer):
    whole = openai_client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=12, temperature=0)
    helpers.assert_schema(whole.model_dump(exclude_unset=True), SCHEMA)
    choice = whole.choices[0]
    assert whole.object == "text_completion" and choice.text and choice.finish_reason in ("stop", "length")
    # No chat template: the prompt's tokens are the tokenizer's of the text alone.
    assert whole.usage.prompt_tokens == len(tokenizer.encode(PROMPT))
    chunks = list(openai_client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=12, temperature=0,
                                                   stream=True, stream_options={"include_usage": True}))
    for chunk in chunks:
        helpers.assert_schema(chunk.model_dump(exclude_unset=True), SCHEMA)
    texts = [c.choices[0] for c in chunks if c.choices]
    assert "".join(c.text for c in texts) == choice.text
    assert texts[-1].finish_reason == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    row = server.log_rows()[-1]
    assert (row["endpoint"], row["status_code"], row["stream"]) == ("/v1/completions", 200, True)


def test_logprobs_echo_stop_and_several_choices_through_the_sdk(openai_client):
    scored = openai_client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3)
    logprobs = scored.choices[0].logprobs
    assert "".join(logprobs.tokens) == scored.choices[0].text
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
    for lp, top in zip(logprobs.token_logprobs, logprobs.top_logprobs):  # greedy: the top entry
        assert len(top) == 3 and lp == pytest.approx(max(top.values()), abs=1e-5)
    echoed = openai_client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=6, temperature=0, echo=True)
    assert echoed.choices[0].text == PROMPT + scored.choices[0].text
    cut = scored.choices[0].text[2:5]
    stopped = openai_client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=6, temperature=0, stop=[cut])
    assert stopped.choices[0].text == scored.choices[0].text[:scored.choices[0].text.index(cut)]
    assert stopped.choices[0].finish_reason == "stop"
    several = openai_client.completions.create(model="smollm2", prompt=[PROMPT, "Once upon a time"], n=2,
                                               max_tokens=3, temperature=0)
    assert [c.index for c in several.choices] == [0, 1, 2, 3]
    assert several.choices[0].text == several.choices[1].text != several.choices[2].text


def test_bad_completions_are_4xx_logged_and_the_server_keeps_serving(server, openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.completions.create(model="smollm2", prompt="def f(", suffix="    return x\n", max_tokens=4)
    assert caught.value.body["param"] == "suffix" and "fill-in-the-middle" in caught.value.body["message"]
    before = len(server.log_rows())
    cases = [{"prompt": "x", "best_of": 2}, {"prompt": "x", "echo": True, "logprobs": 1}, {"prompt": [[1], "a"]},
             {"prompt": {"nested": ["junk"]}}, {"prompt": "x", "logprobs": 99}, {"prompt": "x" * 40_000},
             {"prompt": [[99_999_999]]}, {"prompt": "x", "max_tokens": 4096}, {"prompt": ["a"] * 10_000}]
    for case in cases:
        response = post(server, {"model": "smollm2", **case})
        assert response.status_code == 400, (case, response.text)
        helpers.assert_schema(response.json(), "openai/ErrorResponse")
    rows = server.log_rows()[before:]
    assert [r["status_code"] for r in rows] == [400] * len(cases)
    assert openai_client.completions.create(model="smollm2", prompt="still", max_tokens=2).choices[0].text


def test_schemathesis_finds_no_server_errors_on_completions(server, tmp_path):
    schema = requests.get(f"{server.url}/v1/openapi.json", timeout=30).json()
    schema["paths"] = {"/v1/completions": schema["paths"]["/v1/completions"]}
    request = schema["components"]["schemas"]["CreateCompletion"]["properties"]
    request["max_tokens"]["maximum"] = 2
    for variant in request["prompt"]["oneOf"]:
        if variant["type"] == "array":
            variant["maxItems"] = 4
    before = len(server.log_rows())
    for mode, model, examples in (("positive", ["smollm2"], 12), ("negative", ["no-such-model"], 20)):
        request["model"] = {"type": "string", "enum": model}
        run = helpers.schemathesis_run(server, schema, tmp_path, mode, examples, key="not-needed")
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    rows = server.log_rows()[before:]
    assert len(rows) > 20 and not [r for r in rows if r["status_code"] >= 500]
    assert any(r["status_code"] == 200 for r in rows) and all(r["endpoint"] == "/v1/completions" for r in rows)
    refused = [r for r in rows if 400 <= r["status_code"] < 500]
    assert refused and all("error" in json.loads(r["response_body"]) for r in refused[:50])
