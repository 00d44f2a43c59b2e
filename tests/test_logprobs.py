"""logprobs / top_logprobs in OpenAI's shapes, from the distribution the token was sampled from
(after the logits processors and the temperature): exact on the scripted backend, and on
SmolLM2's real weights (greedy picks the top entry; probabilities add up to at most 1)."""
import json
import math

import pytest

from tests.helpers import assert_openai_error, post, sse_frames

ASK = [{"role": "user", "content": "Hi"}]
PIECES = ["Hel", "lo", " wörld", "!"]


@pytest.fixture
def scripted(models_yaml, serve):
    models_yaml("plain")
    return serve(PIECES)


def check_entries(entries, top):
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == top
        if top:
            ranked = [t["logprob"] for t in entry["top_logprobs"]]
            assert ranked == sorted(ranked, reverse=True)
            assert sum(math.exp(lp) for lp in ranked) <= 1 + 1e-5
            chosen = [t for t in entry["top_logprobs"] if t["token"] == entry["token"]]
            if chosen:  # the chosen token's logprob is its entry in top_logprobs
                assert chosen[0]["logprob"] == pytest.approx(entry["logprob"], abs=1e-5)
        assert entry["logprob"] <= 0


@pytest.mark.django_db
def test_every_token_has_its_logprob_and_top_alternatives(client, scripted):
    body = post(client, {"model": "plain", "messages": ASK, "logprobs": True, "top_logprobs": 3}).json()
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["refusal"] is None
    entries = logprobs["content"]
    assert [e["token"] for e in entries] == PIECES
    check_entries(entries, 3)
    # the script takes the likeliest piece every time, as greedy decoding does
    assert all(e["top_logprobs"][0]["token"] == e["token"] for e in entries)


@pytest.mark.django_db
def test_no_logprobs_unless_asked_and_zero_alternatives(client, scripted):
    assert post(client, {"model": "plain", "messages": ASK}).json()["choices"][0]["logprobs"] is None
    entries = post(client, {"model": "plain", "messages": ASK, "logprobs": True}).json()["choices"][0]["logprobs"]["content"]
    check_entries(entries, 0)
    assert len(entries) == len(PIECES)


@pytest.mark.django_db
def test_temperature_sharpens_the_reported_distribution(client, scripted):
    def first(temperature):
        body = post(client, {"model": "plain", "messages": ASK, "logprobs": True, "top_logprobs": 2,
                             "temperature": temperature}).json()
        return body["choices"][0]["logprobs"]["content"][0]["logprob"]
    assert first(0.5) > first(1.0) > first(2.0)


@pytest.mark.django_db(transaction=True)
def test_streamed_chunks_carry_the_logprobs_of_their_text(scripted):
    frames = sse_frames({"model": "plain", "messages": ASK, "logprobs": True, "top_logprobs": 2, "stream": True})
    chunks = [json.loads(f) for f in frames[:-1]]
    entries = [e for c in chunks if c["choices"] and c["choices"][0]["logprobs"]
               for e in c["choices"][0]["logprobs"]["content"]]
    assert [e["token"] for e in entries] == PIECES
    check_entries(entries, 2)
    for chunk in chunks:
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            assert "".join(e["token"] for e in chunk["choices"][0]["logprobs"]["content"]) == content


@pytest.mark.django_db
@pytest.mark.parametrize("body, param", [
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
])
def test_bad_logprobs_fields_are_400s(client, scripted, body, param):
    assert_openai_error(post(client, {"model": "plain", "messages": ASK, **body}), 400, param=param)


@pytest.fixture
def smollm2(smollm2_dir, models_yaml, serve):
    from pathlib import Path

    from inference.engine import Engine
    from inference.engine.backends import load_model

    models_yaml("smollm2", source={"path": str(smollm2_dir)})
    return serve(Engine(materialize=lambda s: Path(s.source.location), loader=load_model, default_max_tokens=8))


@pytest.mark.model
@pytest.mark.django_db
def test_real_weights_greedy_picks_the_top_entry(client, smollm2):
    body = post(client, {"model": "smollm2", "messages": [{"role": "user", "content": "What is the capital of France?"}],
                         "temperature": 0, "max_tokens": 8, "logprobs": True, "top_logprobs": 5}).json()
    entries = body["choices"][0]["logprobs"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"] - (body["choices"][0]["finish_reason"] == "stop")
    check_entries(entries, 5)
    for entry in entries:
        assert entry["top_logprobs"][0]["token"] == entry["token"]
        assert entry["top_logprobs"][0]["logprob"] == pytest.approx(entry["logprob"], abs=1e-5)
    assert "".join(e["token"] for e in entries) == body["choices"][0]["message"]["content"]


@pytest.mark.model
@pytest.mark.django_db
def test_real_weights_under_a_grammar_list_only_allowed_tokens(client, smollm2):
    body = post(client, {"model": "smollm2", "messages": [{"role": "user", "content": "A JSON object please."}],
                         "seed": 3, "max_tokens": 6, "logprobs": True, "top_logprobs": 20,
                         "response_format": {"type": "json_object"}}).json()
    entries = body["choices"][0]["logprobs"]["content"]
    check_entries([e for e in entries if len(e["top_logprobs"]) == 20], 20)
    # the first token must open the object: every listed alternative does too
    assert all(t["token"].lstrip().startswith("{") for t in entries[0]["top_logprobs"])
    assert math.isfinite(entries[0]["logprob"])
