"""/v1/completions on the scripted backend: the raw prompt reaches the engine (no messages, no
template), text_completion objects and chunks held to OpenAI's schema, n and several prompts,
the legacy logprobs form, echo, and the 400s (logged) of what is not supported."""
import json

import pytest

from inference.engine import RawPrompt
from tests.helpers import assert_openai_error, assert_schema, sse_frames

URL = "/v1/completions"
PIECES = ["def", " add", "(a, b):"]
TEXT = "".join(PIECES)


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml("plain")
    return serve(PIECES)


def complete(client, **body):
    response = client.post(URL, data=json.dumps({"model": "plain", **body}), content_type="application/json")
    assert_schema(response.json(), "openai/CreateCompletionResponse" if response.status_code == 200
                  else "openai/ErrorResponse")
    return response


@pytest.mark.django_db
def test_a_raw_prompt_is_continued_as_a_text_completion(client, scripted):
    body = complete(client, prompt="# add\n", temperature=0).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"text": TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"]["prompt_tokens"] == len("# add\n") and body["usage"]["completion_tokens"] == 3
    request = scripted.requests[0]
    assert request.raw == RawPrompt("# add\n") and request.messages == []
    assert request.params.max_tokens == 16 and request.params.temperature == 0  # OpenAI's default max_tokens


@pytest.mark.django_db
def test_max_tokens_and_stop_cut_the_text(client, scripted):
    assert complete(client, prompt="x", max_tokens=2).json()["choices"][0] | {"logprobs": None} == {
        "text": "def add", "index": 0, "logprobs": None, "finish_reason": "length"}
    assert complete(client, prompt="x", stop=["(a"]).json()["choices"][0]["text"] == "def add"


@pytest.mark.django_db
def test_token_id_prompts_and_several_prompts_with_n(client, scripted):
    body = complete(client, prompt=["ab", "cde"], n=2, seed=3).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert all(c["text"] == TEXT for c in body["choices"])
    assert body["usage"]["prompt_tokens"] == 2 + 3 and body["usage"]["completion_tokens"] == 4 * 3
    assert [r.raw.prompt for r in scripted.requests] == ["ab", "ab", "cde", "cde"]
    assert [r.params.seed for r in scripted.requests] == [3, 4, 3, 4]
    complete(client, prompt=[5, 6, 7])
    assert scripted.requests[-1].raw == RawPrompt([5, 6, 7])


@pytest.mark.django_db
def test_legacy_logprobs_spell_the_text_with_offsets_after_the_echo(client, scripted):
    choice = complete(client, prompt="x", logprobs=2).json()["choices"][0]
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == choice["text"] == TEXT
    assert logprobs["text_offset"] == [0, 3, 7]
    assert all(len(top) == 2 and token in top for token, top in zip(logprobs["tokens"], logprobs["top_logprobs"]))
    assert all(lp == max(top.values()) for lp, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"]))
    echoed = complete(client, prompt="# add\n", echo=True).json()["choices"][0]
    assert echoed["text"] == "# add\n" + TEXT


@pytest.mark.django_db(transaction=True)
def test_streamed_choices_carry_their_text_logprobs_finish_and_usage(scripted):
    frames = sse_frames({"model": "plain", "prompt": ["a", "b"], "stream": True, "logprobs": 0,
                         "stream_options": {"include_usage": True}}, URL, "openai/CreateCompletionResponse")
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == index]
        assert "".join(c["text"] for c in mine) == TEXT
        assert [c["finish_reason"] for c in mine][-1] == "stop" and all(c["finish_reason"] is None for c in mine[:-1])
        offsets = [o for c in mine for o in c["logprobs"]["text_offset"]]
        assert offsets == [0, 3, 7]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    echo = sse_frames({"model": "plain", "prompt": "# ", "stream": True, "echo": True}, URL,
                      "openai/CreateCompletionResponse")
    assert "".join(json.loads(f)["choices"][0]["text"] for f in echo[:-1]) == "# " + TEXT


@pytest.mark.django_db
def test_bad_completions_are_4xx_and_logged(client, scripted):
    from inference.models import RequestLog

    cases = [
        ({"prompt": "x", "best_of": 3}, "best_of"), ({"prompt": "x", "echo": True, "logprobs": 1}, "echo"),
        ({"prompt": "x", "logprobs": 6}, "logprobs"), ({"prompt": {"a": 1}}, "prompt"), ({"prompt": []}, "prompt"),
        ({"prompt": [[1], "a"]}, "prompt"), ({"prompt": "x", "suffix": 5}, "suffix"),
        ({"prompt": ["a"] * 5, "n": 2}, "n"), ({"prompt": [1, 2], "echo": True}, "echo"),
        ({"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),  # the scripted model has no FIM tokens
        ({"prompt": ""}, "prompt"),  # nothing to continue
        ({"prompt": "x" * 200}, "prompt"),  # past the 64-token context
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ]
    before = RequestLog.objects.count()
    for body, param in cases:
        assert_openai_error(complete(client, **body), 400, param=param)
    assert_openai_error(complete(client, prompt="x", model="no-such-model"), 404, param="model")
    rows = list(RequestLog.objects.order_by("id"))[before:]
    assert [r.status_code for r in rows] == [400] * len(cases) + [404]
    assert all(r.endpoint == URL for r in rows)
    assert complete(client, prompt="x", best_of=1, n=1).status_code == 200
