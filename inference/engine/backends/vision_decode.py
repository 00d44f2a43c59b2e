"""Image requests: mlx-vlm prefills the prompt, mlx-lm's class (vision_text.py) decodes it.

Only the prefill needs mlx-vlm: pixel values, the vision tower, and Qwen3-VL's MRoPE and
deepstack features laid out over the whole prompt. Every generated token is text, and decodes
faster on mlx-lm's class, on the same KV cache objects the prefill filled (both libraries'
attention layers read a cache through `offset`, `update_and_fetch` and `make_mask`).

Positions. Gemma 3's are token indices, as mlx-lm's gemma3_text computes them. Qwen3-VL's are
not once an image is in the prompt: an image of h x w merged patches spans max(h, w)
positions, not h * w, so a text token after it sits at `index + rope_deltas` (rope_deltas
from the language model's `get_rope_index`, negative). Its interleaved MRoPE gives a text
token the same position on all three axes, which is plain RoPE at that position, so mlx-lm's
qwen3 only needs its rope offset (`cache.offset`) shifted: each layer decodes on a view of
its cache whose `offset` reads rope_deltas more. The cache itself, its mask and what the
prefix cache keeps stay in token indices; nothing shared with other requests is changed.

The first token comes from mlx-vlm's prefill logits, sampled by the request's own sampler and
logits processors; mlx-lm's generate_step then takes it as a one-token prompt on the filled
cache and decodes the rest with the same sampler and processors (a grammar's parse state
carries over). mlx-lm's penalty processors then count only generated tokens, where mlx-vlm's
also saw the prompt's last token.

A model only decodes images here where a load-time probe agrees: a fixed image prompt,
`PROBE_STEPS` greedy tokens on mlx-vlm, the same tokens fed to mlx-lm's class after mlx-vlm's
prefill; every log-probability must agree within vision_text.MAX_LOGPROB_GAP.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator, Protocol

import mlx.core as mx

from .base import Prompt, Sampling
from .verdicts import remembered
from .vision_text import MAX_LOGPROB_GAP, TextClass

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

PROBE_STEPS = 8
PROBE_MESSAGES = [{"role": "user", "content": [
    {"type": "text", "text": "What is in this picture, and where?"}, {"type": "image_url"}]}]


class VisionModel(Protocol):
    """What this module uses of vision.py's VisionModel (which imports this module)."""

    text: TextClass | None
    prefill_step: int
    fingerprint: str  # of its weights: the probe's verdict is remembered by it (verdicts.py)

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None,
                      images: Any = ()) -> Prompt: ...

    def new_cache(self, tokens: int, prompt: Prompt | None = None) -> list[Any]: ...

    def positions(self, prompt: Prompt) -> dict[str, Any]: ...

    def vlm_stream(self, prompt: Prompt, start: int, cache: list[Any], sampling: Sampling, max_tokens: int,
                   positions: dict[str, Any]) -> Iterator[tuple[int, Any]]: ...


class ShiftedPositions:
    """One layer's KV cache as its attention sees it during decode: positions (`offset`)
    moved by `shift`; everything else, the stored keys and values included, is the cache's."""

    def __init__(self, cache: Any, shift: int):
        self._cache = cache
        self._shift = shift

    @property
    def offset(self) -> int:
        return self._cache.offset + self._shift

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)


def decode_view(cache: list[Any], shift: int) -> list[Any]:
    """`cache` as mlx-lm's class decodes on it: the layers themselves where positions are
    token indices, shifted views where they are not."""
    return [ShiftedPositions(c, shift) for c in cache] if shift else cache


def rope_shift(positions: dict[str, Any]) -> int:
    """How far past its index a generated token's position lies (VisionModel.positions'
    rope_deltas, one per sequence; none: 0)."""
    deltas = positions.get("rope_deltas")
    return int(mx.array(deltas).reshape(-1)[0].item()) if deltas is not None else 0


class FirstPick:
    """The request's sampler, keeping the one pick mlx-vlm's prefill makes and the
    log-probabilities it was made from (generate_step yields neither with max_tokens=0)."""

    def __init__(self, sampler: Any):
        self._sampler = sampler
        self.token: mx.array | None = None
        self.logprobs: mx.array | None = None

    def __call__(self, logprobs: mx.array) -> mx.array:
        self.logprobs = logprobs
        self.token = self._sampler(logprobs)
        return self.token


def decode_after_prefill(vision: VisionModel, prompt: Prompt, start: int, cache: list[Any],
                         sampling: Sampling, max_tokens: int) -> Iterator[tuple[int, Any]]:
    """mlx-vlm prefills prompt.tokens[start:] onto `cache` and picks the first token; mlx-lm's
    class decodes the rest on the same cache, its positions shifted as the prompt's images
    need."""
    from mlx_lm.generate import generate_step

    if max_tokens < 1:
        return
    positions = vision.positions(prompt)
    first = FirstPick(sampling.sampler)
    for _ in vision.vlm_stream(prompt, start, cache, Sampling(first, sampling.logits_processors), 0, positions):
        pass  # max_tokens=0: it prefills and samples, and yields nothing
    token = int(first.token.item())
    yield token, first.logprobs.squeeze(0)
    yield from generate_step(
        mx.array([token]), vision.text.model, max_tokens=max_tokens - 1,
        prompt_cache=decode_view(cache, rope_shift(positions)), prefill_step_size=vision.prefill_step,
        sampler=sampling.sampler, logits_processors=sampling.logits_processors,
    )


def probe_image() -> Image.Image:
    """A fixed, non-square picture (so Qwen's grid has h != w): coloured checks."""
    from PIL import Image

    image = Image.new("RGB", (128, 96))
    image.putdata([(255, 200, 0) if (x // 16 + y // 16) % 2 else (20, 60, 200) for y in range(96) for x in range(128)])
    return image


def image_decode_gap(vision: VisionModel) -> float:
    """The largest |log-prob difference| between mlx-vlm's greedy decode of the probe image
    prompt and mlx-lm's class fed the same tokens after mlx-vlm's prefill (every step, every
    token of the vocabulary; fed, so one near-tie cannot send the two down different texts)."""
    from mlx_lm.sample_utils import make_sampler

    from ...images import LoadedImage

    image = probe_image()
    loaded = LoadedImage(image=image, sha256="probe", source="data", format="PNG", nbytes=0,
                         width=image.width, height=image.height)
    prompt = vision.render_prompt(PROBE_MESSAGES, None, [loaded])
    greedy = Sampling(make_sampler(temp=0.0), [])
    room = len(prompt.tokens) + PROBE_STEPS
    positions = vision.positions(prompt)
    theirs = list(vision.vlm_stream(prompt, 0, vision.new_cache(room, prompt), greedy, PROBE_STEPS, positions))
    cache = vision.new_cache(room, prompt)
    first = FirstPick(greedy.sampler)
    for _ in vision.vlm_stream(prompt, 0, cache, Sampling(first, []), 0, positions):
        pass
    view = decode_view(cache, rope_shift(positions))
    ours = [first.logprobs.squeeze(0)]
    for token, _ in theirs[:-1]:  # one token a step, as decode runs
        logits = vision.text.model(mx.array([[token]]), cache=view)[0, -1]
        ours.append(logits - mx.logsumexp(logits))
    ours, reference = mx.stack(ours), mx.stack([logprobs for _, logprobs in theirs])
    return float(mx.max(mx.abs(ours.astype(mx.float32) - reference.astype(mx.float32))).item())


def check_image_decode(vision: VisionModel, name: str) -> float | None:
    """The probe's gap where image requests may decode on mlx-lm's class, None where they stay
    on mlx-vlm (no class, the probe failed, or the gap is over MAX_LOGPROB_GAP)."""
    if vision.text is None:
        return None
    try:
        gap = remembered(vision.fingerprint, "image", lambda: image_decode_gap(vision))
    except Exception as exc:  # the class cannot continue mlx-vlm's cache: mlx-vlm decodes images
        log.info("%s: mlx-lm's class cannot decode after an image prefill (%s); image requests stay on mlx-vlm",
                 name, exc)
        return None
    if gap > MAX_LOGPROB_GAP:
        log.warning("%s: after an image prefill mlx-lm's class disagrees with mlx-vlm (max logprob gap %.3g); "
                    "image requests decode on mlx-vlm", name, gap)
        return None
    log.info("%s: image requests decode on mlx-lm's class after mlx-vlm's prefill (probe: max logprob gap %.3g)",
             name, gap)
    return gap

