"""Vision models through mlx-vlm: one load serves text-only and image requests.

The prompt goes through the tool format, the model's own chat template (image parts become
the family's image marker) and the model's own processor, which turns each image into pixel
values and expands its marker into the image tokens the vision tower's features replace.

Text-only requests run on mlx-lm's own class for the language model, on the same arrays, where
one exists and agrees with mlx-vlm's (vision_text.py): faster per token, and batched with
other text-only requests through mlx-lm's BatchGenerator. Image requests run alone: mlx-vlm
prefills them (pixel values, the vision tower) into mlx-vlm's KV caches, and then that same
class decodes on those caches, its positions shifted past Qwen's images, where a load-time
probe agrees (vision_decode.py); otherwise mlx-vlm decodes them too. A text-only prompt never
shares a cached prefix with an image prompt (their cache keys differ), so an mlx-lm cache
never meets an image prefill.

Prompt cache: a prompt's `cache_key` holds its images' keys (sha256 of the bytes and the size
they were scaled to), so a cached prefix is only ever reused for the same images in the same
order. Within that, a cached prefix is usable when every image token lies inside it: the
rest is text, fed without pixel values. When an image token lies past the cached prefix,
`accepts_cached_prefix` says no and the engine prefills from scratch: image features are
computed for whole images, and Qwen's MRoPE positions and deepstack features are laid out
over the whole prompt, so a prefix that ends before or inside an image is not worth reusing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import copy

import mlx.core as mx

from registry.specs import ModelSpec

from ...constraints import Grammars
from ...images import LoadedImage, image_parts
from ...tools.base import prepare_prompt
from ..disk_cache import weights_fingerprint
from ..messages import to_vision_messages
from ..types import ImagesNotPrepared, SamplingParams
from .base import Batching, Detokenizer, MlxBackend, Prompt, Sampling
from .kv import reusable_cache
from .text import MlxLmRunner, mergeable, sampling_of
from .vision_decode import check_image_decode, decode_after_prefill
from .vision_text import text_class_of

# What the processor returns beside the tokens that the model needs again at prefill.
_TEXT_KEYS = ("input_ids", "attention_mask", "pixel_values", "token_type_ids", "mm_token_type_ids")


class VisionModel(MlxBackend):
    def __init__(self, spec: ModelSpec, path: Path, *, prefill_step: int = 2048, full_kv_tokens: int = 0):
        from mlx_vlm import load as mlx_vlm_load

        super().__init__(spec, path, mlx_vlm_load, prefill_step=prefill_step, full_kv_tokens=full_kv_tokens)
        self.processor = self.loaded
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        config = self.model.config
        self.model_type = config.model_type
        self.media_tokens = {
            t for t in (getattr(config, "image_token_index", None), getattr(config, "image_token_id", None),
                        getattr(config, "video_token_index", None), getattr(config, "video_token_id", None))
            if isinstance(t, int)
        }
        criteria = getattr(self.tokenizer, "stopping_criteria", None)
        self.end_tokens = set(getattr(criteria, "eos_token_ids", None) or [])
        if self.tokenizer.eos_token_id is not None:
            self.end_tokens.add(self.tokenizer.eos_token_id)
        self.grammars = Grammars(self.tokenizer, self.end_tokens)
        self.fingerprint = weights_fingerprint(path)  # what the load-time probes are remembered by
        self.text = text_class_of(self.model, path, self.fingerprint)
        # Where image requests decode on mlx-lm's class after mlx-vlm's prefill: the
        # load-time probe's largest logprob gap; None: they decode on mlx-vlm.
        self.image_decode_gap = check_image_decode(self, path.name)
        self.runner = (MlxLmRunner(self.text.model, self.grammars, self.end_tokens, self.prefill_step)
                       if self.text is not None else None)
        # Text-only requests batch on mlx-lm's class (engine/scheduler.batchable keeps image
        # requests out of batches); without that class every request runs alone.
        self.batching: Batching | None = (
            self.runner if self.runner is not None and mergeable(self.runner.model) else None
        )

    def _text_only(self, prompt: Prompt | None) -> bool:
        """Whether `prompt` runs on mlx-lm's class (a prompt without pixel values, and a class)."""
        return self.text is not None and prompt is not None and "pixel_values" not in prompt.inputs

    # --- prompt -----------------------------------------------------------------------------

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None,
                      images: Sequence[LoadedImage] = (), template_kwargs: dict[str, Any] | None = None) -> Prompt:
        places = [where for where, _ in image_parts(messages)]
        if len(places) != len(images):
            raise ImagesNotPrepared(f"{len(places)} image parts came with {len(images)} decoded images "
                                    "(inference/images.py loads them)", param=places[0] if places else "messages")
        template = getattr(self.tokenizer, "chat_template", None)
        template_messages, template_tools = prepare_prompt(
            self.tool_format, to_vision_messages(messages), tools, template
        )
        text = self.tokenizer.apply_chat_template(
            template_messages, tools=template_tools, add_generation_prompt=True, tokenize=False,
            **self.template_variables(template_kwargs),
        )
        opened = self.opened_by(text)
        # Templates that write BOS themselves (Gemma's) must not get a second one.
        bos = self.tokenizer.bos_token
        add_special_tokens = not (bos and text.startswith(bos))
        if not images:
            return Prompt(list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens)),
                          opened=opened)
        try:
            inputs = self.processor(
                text=[text], images=[image.image for image in images],
                add_special_tokens=add_special_tokens, return_tensors="mlx",
            )
        except Exception as exc:  # e.g. an aspect ratio the processor cannot tile
            raise ImagesNotPrepared(f"the images could not be prepared for {self.spec.id}: {exc}",
                                    param=places[0]) from exc
        tokens = inputs["input_ids"][0].tolist()
        positions = [i for i, t in enumerate(tokens) if t in self.media_tokens]
        return Prompt(
            tokens,
            cache_key=tuple(image.key for image in images),
            inputs={
                "pixel_values": inputs["pixel_values"],
                "mask": inputs.get("attention_mask"),
                "extra": {k: v for k, v in inputs.items() if k not in _TEXT_KEYS},
                "last_media_position": positions[-1] if positions else -1,
            },
            opened=opened,
        )

    def accepts_cached_prefix(self, prompt: Prompt, start: int) -> bool:
        """Whether the KV state of prompt.tokens[:start] can be continued: every image token
        must lie inside it (the rest is then plain text)."""
        return prompt.inputs.get("last_media_position", -1) < start

    def new_cache(self, tokens: int, prompt: Prompt | None = None) -> list[Any]:
        """mlx-lm's caches for a text-only prompt on mlx-lm's class, mlx-vlm's otherwise."""
        if self._text_only(prompt):
            from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

            return reusable_cache(make_prompt_cache(self.text.model), self.model_type, tokens,
                                  self.full_kv_tokens, RotatingKVCache, KVCache)
        from mlx_vlm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

        return reusable_cache(make_prompt_cache(self.model.language_model), self.model_type, tokens,
                              self.full_kv_tokens, RotatingKVCache, KVCache)

    # --- generation -------------------------------------------------------------------------

    def detokenizer(self) -> Detokenizer:
        """A copy per request, as mlx-lm's tokenizer hands out: batched requests detokenize at once."""
        detokenizer = copy.copy(self.processor.detokenizer)
        detokenizer.reset()
        return detokenizer

    def positions(self, prompt: Prompt) -> dict[str, Any]:
        """Qwen-style MRoPE positions of the whole prompt (position_ids, rope_deltas): for a
        prefill that starts inside it (the language model slices them at the cache offset) and
        for decoding after it (vision_decode.py); nothing for other models."""
        lm = self.model.language_model
        get_rope_index = getattr(lm, "get_rope_index", None)
        if get_rope_index is None:
            return {}
        extra = prompt.inputs.get("extra", {})
        position_ids, rope_deltas = get_rope_index(
            mx.array([prompt.tokens]), extra.get("image_grid_thw"), extra.get("video_grid_thw"),
            prompt.inputs.get("mask"),
        )
        return {"position_ids": position_ids, "rope_deltas": rope_deltas}

    def token_stream(
        self, prompt: Prompt, start: int, cache: list[Any], params: SamplingParams, max_tokens: int
    ) -> Iterator[tuple[int, Any]]:
        """Prefill what `cache` lacks (with the pixel values when the images are in it), then
        decode token by token: a text-only prompt on mlx-lm's class; an image prompt prefilled
        on mlx-vlm, then decoded on mlx-lm's class where the load-time probe agreed
        (vision_decode.py), else on mlx-vlm."""
        if self._text_only(prompt):
            yield from self.runner.stream(prompt, start, cache, params, max_tokens)
            return
        from mlx_vlm.generate import generation_stream, wired_limit

        if start and not self.accepts_cached_prefix(prompt, start):
            cache[:] = self.new_cache(len(prompt.tokens) + max_tokens)  # the engine asks first; this only guards direct callers
            start = 0
        if params.seed is not None:
            mx.random.seed(params.seed)
        sampling = sampling_of(params, self.grammars.processor(params.grammar, prefix=prompt.opened))
        with wired_limit(self.model, [generation_stream]):
            if self.text is not None and self.image_decode_gap is not None:
                yield from decode_after_prefill(self, prompt, start, cache, sampling, max_tokens)
            else:
                yield from self.vlm_stream(prompt, start, cache, sampling, max_tokens, self.positions(prompt))

    def vlm_stream(self, prompt: Prompt, start: int, cache: list[Any], sampling: Sampling, max_tokens: int,
                   positions: dict[str, Any]) -> Iterator[tuple[int, Any]]:
        """mlx-vlm's generate_step over prompt.tokens[start:]: from the start with the pixel
        values, or after a cached prefix that holds every image, with the whole prompt's
        `positions` (self.positions)."""
        from mlx_vlm.generate import generate_step

        lm = self.model.language_model
        for attr in ("_position_ids", "_rope_deltas"):  # MRoPE state of an earlier request
            if hasattr(lm, attr):
                setattr(lm, attr, None)
        kwargs: dict[str, Any] = {}
        pixel_values = mask = None
        if start == 0:
            pixel_values, mask = prompt.inputs.get("pixel_values"), prompt.inputs.get("mask")
            kwargs.update(prompt.inputs.get("extra", {}))
        else:
            kwargs.update(positions)
        yield from generate_step(
            mx.array([prompt.tokens[start:]]), self.model, pixel_values, mask, max_tokens=max_tokens,
            prompt_cache=cache, prefill_step_size=self.prefill_step, sampler=sampling.sampler,
            logits_processors=sampling.logits_processors, **kwargs,
        )
