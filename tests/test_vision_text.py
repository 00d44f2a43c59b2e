"""Text-only requests to a vision model run on mlx-lm's own class for its language model
(backends/vision_text.py), on the same arrays: it must agree with mlx-vlm's, token for token,
on both fixture architectures; image requests stay on mlx-vlm."""
from __future__ import annotations

from pathlib import Path

import pytest

from inference.engine.backends.vision import VisionModel
from inference.engine.types import SamplingParams
from registry.specs import parse_spec

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0)
MESSAGES = [{"role": "user", "content": "Tell me about the lighthouse on the hill, and its keeper."}]


@pytest.fixture(scope="module", params=["tiny_gemma3_dir", "tiny_qwen3_vl_dir"])
def vision(request):
    path = request.getfixturevalue(request.param)
    spec = parse_spec({"id": "v", "backend": "vision", "source": {"path": str(path)}}, 0)
    return VisionModel(spec, path)


def library_of(cache: list) -> set[str]:
    return {type(c).__module__.split(".")[0] for c in cache}


def tokens_of(model, prompt, n: int = 24) -> list[int]:
    stream = model.token_stream(prompt, 0, model.new_cache(len(prompt.tokens) + n, prompt), GREEDY, n)
    try:
        return [int(token) for token, _ in stream]
    finally:
        stream.close()


def test_the_text_class_shares_the_arrays_and_agrees(vision):
    assert vision.text is not None and vision.batching is not None
    ours = dict(vision.text.model.parameters()["model"])
    theirs = dict(vision.model.language_model.parameters()["model"])
    assert ours["embed_tokens"]["weight"] is theirs["embed_tokens"]["weight"]  # no second copy
    assert vision.text.max_logprob_gap < 0.25 and vision.text.greedy_agreement == 1.0


def test_text_only_greedy_tokens_match_mlx_vlm(vision):
    prompt = vision.render_prompt(MESSAGES, None)
    assert library_of(vision.new_cache(64, prompt)) == {"mlx_lm"}
    ours = tokens_of(vision, prompt)
    text, vision.text = vision.text, None  # mlx-vlm alone, as a model without the class runs
    try:
        theirs = tokens_of(vision, prompt)
    finally:
        vision.text = text
    assert ours == theirs


def test_a_disagreeing_class_is_not_used(vision, monkeypatch):
    """A class whose log-probabilities stray from mlx-vlm's on the probe is refused at load."""
    import inference.engine.backends.vision_text as vision_text

    real = vision_text._probe
    monkeypatch.setattr(vision_text, "_probe", lambda m, lm, v: (real(m, lm, v)[0] + 3.0, 1.0))
    refused = VisionModel(vision.spec, Path(vision.spec.source.location))
    assert refused.text is None and refused.batching is None
    prompt = refused.render_prompt(MESSAGES, None)
    assert library_of(refused.new_cache(64, prompt)) == {"mlx_vlm"}
    assert len(tokens_of(refused, prompt, 4)) == 4
