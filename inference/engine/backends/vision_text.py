"""A vision model's language model as mlx-lm's own model class, on the same weight arrays.

mlx-lm's text classes decode faster than mlx-vlm's language models of the same weights
(Qwen3-VL 4B on an H200: 1.44x; mlx-vlm's MRoPE and deepstack plumbing runs on every token
even without images), and mlx-lm's BatchGenerator can batch them. So a text-only request to a
vision model runs here; a request with images stays on mlx-vlm. No weight is copied: the
mlx-lm module's parameters are the mlx-vlm module's arrays.

A class is only used where it agrees with mlx-vlm's: at load, both run a fixed probe and
every log-probability (every position, every token of the vocabulary) must agree within
MAX_LOGPROB_GAP; otherwise the model stays on mlx-vlm alone. A class that computed something
else (positions, norms, scaling) is off by nats; bfloat16 rounding is a few hundredths to a
quarter. Greedy picks are not the test: random-weight builds have near-ties everywhere, and
a quarter-nat rounding flips them (Qwen3-VL 4B 4-bit on an H200: gap 0.25, picks differ).
"""
from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from .verdicts import remembered

log = logging.getLogger(__name__)

# mlx-vlm model_type -> the mlx-lm module whose Model takes its text_config and weights.
MLX_LM_CLASS_OF = {"qwen3_vl": "qwen3", "gemma3": "gemma3_text"}
PROBE_TOKENS = 64
MAX_LOGPROB_GAP = 0.5


@dataclass(frozen=True)
class TextClass:
    model: nn.Module  # mlx-lm's Model, sharing the vision model's language-model arrays
    max_logprob_gap: float  # over the load-time probe, against mlx-vlm's language model
    greedy_agreement: float  # share of probe positions where both pick the same token


def text_config_of(config: dict[str, Any]) -> dict[str, Any]:
    """A vision model's config.json as its language model's own: the text_config, with the
    top-level keys the text class needs."""
    text = dict(config.get("text_config") or {})
    for key in ("vocab_size", "tie_word_embeddings"):
        if key in config and key not in text:
            text[key] = config[key]
    return text


def _quantize_like(model: nn.Module, language_model: nn.Module) -> None:
    """Quantize `model`'s layers exactly where mlx-vlm's are, with the same group size,
    bits and mode, so the quantized arrays fit."""
    quantized = {
        path: {"group_size": module.group_size, "bits": module.bits, "mode": getattr(module, "mode", "affine")}
        for path, module in language_model.named_modules() if hasattr(module, "scales")
    }
    if quantized:
        nn.quantize(model, class_predicate=lambda path, _: quantized.get(path, False))


def _logprobs(logits: Any) -> mx.array:
    logits = getattr(logits, "logits", logits)  # mlx-vlm returns a LanguageModelOutput
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def _probe(model: nn.Module, language_model: nn.Module, vocab: int) -> tuple[float, float]:
    """(largest |log-prob difference|, share of positions with the same greedy pick) over a
    fixed token probe."""
    from mlx_lm.models.cache import make_prompt_cache as lm_cache
    from mlx_vlm.models.cache import make_prompt_cache as vlm_cache

    probe = mx.array([[(7 + 31 * i) % max(vocab - 1, 1) + 1 for i in range(PROBE_TOKENS)]])
    ours = _logprobs(model(probe, cache=lm_cache(model)))
    theirs = _logprobs(language_model(probe, cache=vlm_cache(language_model)))
    same = mx.mean((mx.argmax(ours, axis=-1) == mx.argmax(theirs, axis=-1)).astype(mx.float32)).item()
    return float(mx.max(mx.abs(ours.astype(mx.float32) - theirs.astype(mx.float32))).item()), float(same)


def text_class_of(vision_model: nn.Module, path: Path, fingerprint: str) -> TextClass | None:
    """mlx-lm's class for `vision_model`'s language model, or None (no such class, it does
    not load the weights, or it disagrees with mlx-vlm's on the probe); `fingerprint`, of the
    folder's weights, is what the probe's verdict is remembered by (verdicts.py)."""
    config = json.loads((path / "config.json").read_text())
    name = MLX_LM_CLASS_OF.get(config.get("model_type", ""))
    language_model = getattr(vision_model, "language_model", None)
    if name is None or language_model is None:
        return None
    try:
        module = importlib.import_module(f"mlx_lm.models.{name}")
        args = text_config_of(config)
        args["model_type"] = name
        model = module.Model(module.ModelArgs.from_dict(args))
        _quantize_like(model, language_model)
        wanted = {key for key, _ in tree_flatten(model.parameters())}
        arrays = {key: value for key, value in tree_flatten(language_model.parameters()) if key in wanted}
        if set(arrays) != wanted:
            log.info("%s: mlx-lm's %s lacks %s; text stays on mlx-vlm", path.name, name,
                     sorted(wanted - set(arrays))[:3])
            return None
        model.update(tree_unflatten(list(arrays.items())))
        gap, same = remembered(fingerprint, f"text:{name}",
                               lambda: _probe(model, language_model, int(args.get("vocab_size") or 2)))
    except Exception as exc:  # a config the text class cannot take: mlx-vlm serves it all
        log.info("%s: mlx-lm's %s cannot serve its text (%s); text stays on mlx-vlm", path.name, name, exc)
        return None
    if gap > MAX_LOGPROB_GAP:
        log.warning("%s: mlx-lm's %s disagrees with mlx-vlm (max logprob gap %.3g); text stays on mlx-vlm",
                    path.name, name, gap)
        return None
    log.info("%s: text-only requests on mlx-lm's %s (probe: max logprob gap %.3g, same greedy pick at %.0f%%)",
             path.name, name, gap, 100 * same)
    return TextClass(model, gap, same)
