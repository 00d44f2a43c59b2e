"""KV caches the prefix cache can reuse, for models with sliding-window layers.

Gemma 3 gives five layers in six a sliding window, and its `make_cache` hands them mlx's
RotatingKVCache, which keeps only the last `window` tokens. Once a prompt is longer than the
window that cache cannot be trimmed back to a shorter prefix, and the chat template re-renders
the model's answer differently from what was generated, so no later turn could reuse it: every
turn past the window was a cold prefill.

These models build the sliding layers' mask from the cache (`make_mask(window_size=...)`),
which a plain KVCache honours too: attention sees the same window, the cache just keeps every
token and can be trimmed like any other. So up to a bound on the tokens a request may reach
(prompt + max_tokens) the sliding layers get a plain KVCache; past it memory wins and the
rotating caches stay (no reuse past the window, as before). Only model types checked to build
the window mask that way are listed: for a model that relied on the rotating cache to drop old
tokens, a plain cache would silently widen its attention.
"""
from __future__ import annotations

from typing import Any

# Checked in mlx-lm (gemma3_text; gemma3 wraps it) and mlx-vlm (gemma3), and by
# tests/test_kv_window.py against the rotating cache.
WINDOW_MASKED_MODEL_TYPES = frozenset({"gemma3", "gemma3_text"})


def reusable_cache(
    caches: list[Any], model_type: str, tokens: int, full_kv_tokens: int,
    rotating: type, plain: type,
) -> list[Any]:
    """`caches` (the model's own `make_cache()`) with its sliding-window layers (`rotating`
    with no kept prefix) swapped for `plain` ones, when the model builds its window mask from
    the cache and the request may reach at most `full_kv_tokens` tokens."""
    if model_type not in WINDOW_MASKED_MODEL_TYPES or tokens > full_kv_tokens:
        return caches
    return [plain() if isinstance(c, rotating) and not c.keep else c for c in caches]
