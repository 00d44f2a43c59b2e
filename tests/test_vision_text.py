"""Text-only requests to a vision model run on mlx-lm's own class for its language model
(backends/vision_text.py), on the same arrays: it must agree with mlx-vlm's, token for token,
on both fixture architectures. Image requests are prefilled on mlx-vlm and decoded on that
class (backends/vision_decode.py): greedy tokens and log-probabilities must match mlx-vlm's own
decode, Qwen3-VL's MRoPE positions after the image included, also after a cached prefix.

The random-weight Qwen fixture's greedy decode of an image prompt repeats one token, so the
token comparison there says little; the log-probabilities (every step, the whole vocabulary)
are the test, and a position off by one already moves them by over 0.5."""
from __future__ import annotations

from pathlib import Path

import pytest

import mlx.core as mx

from inference.engine.backends import verdicts
from inference.engine.backends.base import Prompt
from inference.engine.backends.vision import VisionModel
from inference.engine.backends.vision_decode import probe_image
from inference.engine.backends.vision_text import MAX_LOGPROB_GAP
from inference.engine.types import SamplingParams
from inference.images import LoadedImage
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


def steps_of(model, prompt, n: int = 24, start: int = 0, cache: list | None = None) -> list[tuple[int, mx.array]]:
    cache = model.new_cache(len(prompt.tokens) + n, prompt) if cache is None else cache
    stream = model.token_stream(prompt, start, cache, GREEDY, n)
    try:
        return [(int(token), logprobs) for token, logprobs in stream]
    finally:
        stream.close()


def tokens_of(model, prompt, n: int = 24) -> list[int]:
    return [token for token, _ in steps_of(model, prompt, n)]


def on_mlx_vlm(model, run):
    """`run()` with image requests decoding on mlx-vlm, as a model whose probe disagreed."""
    gap, model.image_decode_gap = model.image_decode_gap, None
    try:
        return run()
    finally:
        model.image_decode_gap = gap


def largest_gap(ours: list, theirs: list) -> float:
    return max(float(mx.max(mx.abs(a.astype(mx.float32) - b.astype(mx.float32))).item())
               for (_, a), (_, b) in zip(ours, theirs, strict=True))


def image_prompt(model, text: str = "Describe the picture in detail.") -> Prompt:
    image = probe_image().resize((160, 96))  # not the probe's own picture
    loaded = LoadedImage(image=image, sha256="test", source="data", format="PNG", nbytes=0,
                         width=image.width, height=image.height)
    return model.render_prompt([{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url"}]}],
                               None, [loaded])


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
    verdicts.forget()  # the fixture's load remembered the real verdict
    refused = VisionModel(vision.spec, Path(vision.spec.source.location))
    assert refused.text is None and refused.batching is None
    prompt = refused.render_prompt(MESSAGES, None)
    assert library_of(refused.new_cache(64, prompt)) == {"mlx_vlm"}
    assert len(tokens_of(refused, prompt, 4)) == 4


def test_image_decode_on_the_text_class_matches_mlx_vlm(vision, monkeypatch):
    prompt = image_prompt(vision)
    assert vision.image_decode_gap is not None and vision.image_decode_gap <= MAX_LOGPROB_GAP
    ours = steps_of(vision, prompt)
    theirs = on_mlx_vlm(vision, lambda: steps_of(vision, prompt))
    gap = largest_gap(ours, theirs)
    print(f"{vision.spec.source.location}: image decode, 24 steps: max logprob gap {gap:.4g} "
          f"(load probe {vision.image_decode_gap:.4g})")
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert gap < 0.25
    # mlx-vlm's language model runs the prefill only: its calls do not grow with the tokens.
    lm_class = type(vision.model.language_model)
    calls = []
    real = lm_class.__call__
    monkeypatch.setattr(lm_class, "__call__", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    steps_of(vision, prompt, 3)
    short = len(calls)
    steps_of(vision, prompt, 12)
    assert len(calls) == 2 * short


def test_a_follow_up_on_the_cached_image_prefix_matches_a_cold_prefill(vision):
    """The decoded tokens' KV state, written by mlx-lm's class at the shifted positions, is
    what mlx-vlm computes for them when it prefills the whole follow-up from scratch."""
    first = image_prompt(vision)
    cache = vision.new_cache(len(first.tokens) + 64, first)
    answer = [token for token, _ in steps_of(vision, first, 12, cache=cache)]
    held = cache[0].offset
    tokens = first.tokens + answer + vision.tokenizer.encode(" And the colours?", add_special_tokens=False)
    assert len(first.tokens) < held <= len(tokens)
    follow_up = Prompt(tokens, cache_key=first.cache_key, inputs={
        **first.inputs, "mask": mx.ones((1, len(tokens)), dtype=mx.int32)})
    assert vision.accepts_cached_prefix(follow_up, held)
    warm = steps_of(vision, follow_up, 8, start=held, cache=cache)
    cold = on_mlx_vlm(vision, lambda: steps_of(vision, follow_up, 8))
    assert [t for t, _ in warm] == [t for t, _ in cold]
    assert largest_gap(warm, cold) < 0.25


def test_the_image_probe_refuses_wrong_positions(vision, monkeypatch):
    """Without Qwen's rope_deltas the probe's gap is over the bound, and image requests decode on
    mlx-vlm (Gemma's positions are token indices: its probe passes unshifted)."""
    import inference.engine.backends.vision_decode as vision_decode

    monkeypatch.setattr(vision_decode, "rope_shift", lambda positions: 0)
    gap = vision_decode.image_decode_gap(vision)
    if "rope_deltas" not in vision.positions(image_prompt(vision)):
        assert gap <= MAX_LOGPROB_GAP
        return
    assert gap > MAX_LOGPROB_GAP
    verdicts.forget()
    refused = VisionModel(vision.spec, Path(vision.spec.source.location))
    assert refused.text is not None and refused.image_decode_gap is None
    prompt = image_prompt(refused)
    assert tokens_of(refused, prompt, 6) == on_mlx_vlm(vision, lambda: tokens_of(vision, prompt, 6))


def test_a_second_load_of_the_same_weights_takes_the_probes_verdicts(vision, monkeypatch):
    """A swap back (the same folder loaded again in the process) runs neither probe: their
    verdicts are remembered by the weights' fingerprint (backends/verdicts.py)."""
    import inference.engine.backends.vision_decode as vision_decode
    import inference.engine.backends.vision_text as vision_text

    verdicts.forget()
    first = VisionModel(vision.spec, Path(vision.spec.source.location))
    probed = []
    monkeypatch.setattr(vision_text, "_probe", lambda *a: probed.append("text"))
    monkeypatch.setattr(vision_decode, "image_decode_gap", lambda *a: probed.append("image"))
    again = VisionModel(vision.spec, Path(vision.spec.source.location))
    assert probed == []
    assert (again.text.max_logprob_gap, again.image_decode_gap) == (first.text.max_logprob_gap, first.image_decode_gap)
