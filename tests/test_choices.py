"""n > 1: n choices with their own index, streamed and not, usage summed (the prompt once), one
log row; the bound is a 400. Distinct choices with a seed at temperature 1 and identical ones
at temperature 0 on SmolLM2's real weights, decoded alone and in a batch."""
import json
from pathlib import Path

import pytest

from tests.helpers import assert_openai_error, post, sse_frames

ASK = [{"role": "user", "content": "Hi"}]
PIECES = ["Hello", " there"]


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml("plain")
    return serve(PIECES)


@pytest.mark.django_db
def test_n_choices_with_their_index_and_summed_usage(client, scripted):
    body = post(client, {"model": "plain", "messages": ASK, "n": 3, "seed": 5}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert all(c["message"]["content"] == "Hello there" and c["finish_reason"] == "stop" for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 3 * len(PIECES)
    assert body["usage"]["prompt_tokens"] == len("Hi")
    assert [r.params.seed for r in scripted.requests] == [5, 6, 7]


@pytest.mark.django_db(transaction=True)
def test_streamed_choices_each_get_their_chunks_and_finish(scripted):
    from inference.models import RequestLog

    frames = sse_frames({"model": "plain", "messages": ASK, "n": 2, "stream": True,
                         "stream_options": {"include_usage": True}})
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert "".join(c["delta"].get("content") or "" for c in mine) == "Hello there"
        assert [c["finish_reason"] for c in mine if c["finish_reason"]] == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2 * len(PIECES)
    (row,) = RequestLog.objects.all()
    assert row.completion_tokens == 2 * len(PIECES) and row.status_code == 200


@pytest.mark.django_db
def test_more_choices_than_the_bound_is_a_400(client, scripted, settings):
    settings.MLX_SERVER_MAX_CHOICES = 2
    error = assert_openai_error(post(client, {"model": "plain", "messages": ASK, "n": 3}), 400, param="n")
    assert "MLX_SERVER_MAX_CHOICES" in error["message"]


@pytest.fixture(params=[1, 4], ids=["alone", "batched"])
def smollm2(request, smollm2_dir, models_yaml, serve):
    from inference.engine import Engine
    from inference.engine.backends import load_model

    models_yaml("smollm2", source={"path": str(smollm2_dir)})
    return serve(Engine(materialize=lambda s: Path(s.source.location), loader=load_model,
                        default_max_tokens=12, batch_size=request.param))


STORY = [{"role": "user", "content": "Write one sentence about a cat."}]


@pytest.mark.model
@pytest.mark.django_db
def test_real_choices_differ_when_sampled_and_agree_when_greedy(client, smollm2):
    sampled = post(client, {"model": "smollm2", "messages": STORY, "n": 3, "temperature": 1.0,
                            "max_tokens": 8, "seed": 11}).json()
    texts = [c["message"]["content"] for c in sampled["choices"]]
    assert len(set(texts)) == 3, texts
    # without a seed too (the batched path, when batching): distinct draws
    unseeded = post(client, {"model": "smollm2", "messages": STORY, "n": 3, "temperature": 1.0,
                             "max_tokens": 8}).json()
    assert len({c["message"]["content"] for c in unseeded["choices"]}) > 1
    greedy = post(client, {"model": "smollm2", "messages": STORY, "n": 3, "temperature": 0, "max_tokens": 8}).json()
    assert len({c["message"]["content"] for c in greedy["choices"]}) == 1
    assert greedy["usage"]["completion_tokens"] == 3 * smollm2.requests[-1].params.max_tokens \
        or greedy["choices"][0]["finish_reason"] == "stop"
