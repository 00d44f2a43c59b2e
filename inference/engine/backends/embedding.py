"""Encoder models through mlx-embeddings: token lists in, one vector per input out, pooled and
normalized as the model's own sentence-transformers files say (modules.json, the Pooling module's
config.json), so the vectors are the ones its reference pipeline makes from the same weights.

mlx-embeddings' own `text_embeds` is always mean-pooled and normalized whatever the model was
trained with; only its `last_hidden_state` is taken here. Inputs are sorted by length and cut
into batches of at most `batch_tokens` padded tokens, which bounds a request's activations
however many inputs it has.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from registry.model_folder import context_length
from registry.specs import ModelSpec

from ..types import ModelLoadError

# Pooling/config.json's switch for each mode sentence-transformers has that this module pools.
POOLING_KEYS = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
                "max": "pooling_mode_max_tokens", "lasttoken": "pooling_mode_lasttoken"}


@dataclass(frozen=True)
class Pooling:
    mode: str  # one of POOLING_KEYS
    normalize: bool  # a Normalize module follows: unit vectors


def _json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_pooling(folder: Path) -> Pooling:
    """The pipeline a sentence-transformers folder declares; a bare encoder folder (no
    modules.json) gets mean pooling and normalization, mlx-embeddings' own default."""
    modules = _json(folder / "modules.json")
    if not isinstance(modules, list):
        return Pooling("mean", True)
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    unsupported = set(kinds) - {"Transformer", "Pooling", "Normalize"}
    if unsupported:
        raise ModelLoadError(f"sentence-transformers module(s) {', '.join(sorted(unsupported))} are not supported")
    config = _json(folder / kinds["Pooling"].get("path", "") / "config.json") if "Pooling" in kinds else None
    modes = [mode for mode, key in POOLING_KEYS.items() if (config or {}).get(key)]
    others = [k for k, v in (config or {}).items() if k.startswith("pooling_mode_") and v
              and k not in POOLING_KEYS.values()]
    if config is not None and (len(modes) != 1 or others):
        raise ModelLoadError(f"pooling config {config} must select exactly one of {', '.join(POOLING_KEYS)}")
    return Pooling(modes[0] if modes else "mean", "Normalize" in kinds)


def pool(hidden: mx.array, mask: mx.array, mode: str) -> mx.array:
    """(batch, tokens, dim) hidden states -> (batch, dim), padding left out."""
    m = mask[..., None].astype(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return mx.max(mx.where(m > 0, hidden, mx.array(-1e9, hidden.dtype)), axis=1)
    if mode == "lasttoken":
        last = mx.sum(mask, axis=1).astype(mx.int32) - 1
        return mx.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
    return mx.sum(hidden * m, axis=1) / mx.maximum(mx.sum(m, axis=1), 1e-9)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Input indices, shortest first, cut so that no batch pads to more than `batch_tokens`
    tokens (one long input alone may)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * lengths[i] <= batch_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


class EmbeddingModel:
    """One encoder model resident in memory; the engine's worker thread alone calls it."""

    batching = None  # never shares a chat batch

    def __init__(self, spec: ModelSpec, path: Path, *, batch_tokens: int):
        from mlx_embeddings.utils import load_model as load_encoder
        from tokenizers import Tokenizer

        self.spec = spec
        path = Path(path)
        try:
            self.model = load_encoder(path)
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # missing/corrupt files, an architecture mlx-embeddings lacks
            raise ModelLoadError(f"could not load {spec.id} from {path}: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pooling = read_pooling(path)
        self.context_length = context_length(spec, path)
        self.nbytes = sum(v.nbytes for _, v in tree_flatten(self.model.parameters()))
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.batch_tokens = batch_tokens
        self.pad_id = next((self.tokenizer.token_to_id(t) for t in ("[PAD]", "<pad>", "<|endoftext|>")
                            if self.tokenizer.token_to_id(t) is not None), 0)
        self.before, self.after = self._specials()
        self.dimensions = int(self._encode([[*self.before, *self.after]]).shape[1])

    def _specials(self) -> tuple[list[int], list[int]]:
        """The tokens the tokenizer's post-processor puts before and after a text ([CLS] ... [SEP])."""
        plain = self.tokenizer.encode("a", add_special_tokens=False).ids
        full = self.tokenizer.encode("a").ids
        at = next(i for i in range(len(full)) if full[i:i + len(plain)] == plain)
        return full[:at], full[at + len(plain):]

    def tokenize(self, inputs: list[str | list[int]]) -> list[list[int]]:
        """Each input as the model reads it: a text through the tokenizer, token ids as given
        (the model's own ids of a text, without special tokens), both with the special tokens
        around them."""
        texts = [(i, x) for i, x in enumerate(inputs) if isinstance(x, str)]
        out = [[] if isinstance(x, str) else [*self.before, *x, *self.after] for x in inputs]
        for (i, _), encoding in zip(texts, self.tokenizer.encode_batch([t for _, t in texts])):
            out[i] = encoding.ids
        return out

    def truncated(self, tokens: list[int]) -> list[int]:
        """The input cut to the context, its closing special tokens kept (as the reference
        pipeline's tokenizer truncates)."""
        if len(tokens) <= self.context_length:
            return tokens
        return tokens[: self.context_length - len(self.after)] + self.after

    def _encode(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(rows), width), dtype=np.int32)
        for j, row in enumerate(rows):
            ids[j, : len(row)], mask[j, : len(row)] = row, 1
        out = self.model(mx.array(ids), attention_mask=mx.array(mask))
        pooled = pool(out.last_hidden_state.astype(mx.float32), mx.array(mask), self.pooling.mode)
        return np.array(pooled, dtype=np.float32)

    def embed(self, tokens: list[list[int]], dimensions: int | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> np.ndarray | None:
        """(inputs, dimensions) float32 vectors in input order; None when `cancelled` says the
        client left (checked between batches). `dimensions` shorter than the model's: the
        first ones kept and renormalized (Matryoshka)."""
        vectors = np.empty((len(tokens), self.dimensions), dtype=np.float32)
        for batch in batches([len(t) for t in tokens], self.batch_tokens):
            if cancelled():
                return None
            vectors[batch] = self._encode([tokens[i] for i in batch])
        if self.pooling.normalize:
            vectors = unit(vectors)
        if dimensions and dimensions < self.dimensions:
            vectors = unit(vectors[:, :dimensions])
        return vectors
