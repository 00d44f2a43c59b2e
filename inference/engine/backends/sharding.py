"""Splitting a lazily loaded mlx-lm model over an `mx.distributed` group (models.yaml's
`distributed: {parallel: tensor|pipeline}`), before its weights are read: each rank reads and
holds only its part.

mlx-lm's own split is used wherever the model class has one (`Model.shard` for tensor
parallelism when the heads divide evenly over the ranks, `model.model.pipeline` for pipeline
parallelism). Two gaps in mlx-lm 0.32 are filled here, for the Llama-shaped classes (llama,
and the others whose blocks are `self_attn.{q,k,v,o}_proj` + `mlp.{gate,up,down}_proj`):
- heads that do not divide evenly (SmolLM2: 9 query heads, 3 KV heads, over 2 ranks): whole
  KV groups are split unevenly, the low ranks taking the extra group; the layers are
  mlx.nn's own sharded linears, holding the uneven slices;
- no `pipeline()` on the class (Llama): `PipelineStage` replaces `model.model` with the same
  forward mlx-lm's pipelined models run (recv from the rank after, own layers, send to the
  rank before, all_gather so every rank samples the same token).
The transport is mx.distributed's (ring, JACCL, NCCL): nothing here moves bytes itself.
"""
from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.nn.layers.distributed import shard_linear
from mlx_lm.models.base import create_attention_mask

from registry.specs import PARALLEL


class ShardingError(ValueError):
    """The model cannot be split this way over this many ranks."""


def shard(model: Any, group: mx.distributed.Group, parallel: str) -> None:
    """Split `model` in place over `group` (its weights still lazy)."""
    if group.size() == 1:
        return
    if parallel == "tensor":
        tensor_parallel(model, group)
    elif parallel == "pipeline":
        pipeline_parallel(model, group)
    else:
        raise ShardingError(f"parallel must be one of {', '.join(PARALLEL)}, not {parallel!r}")


def even_split(items: int, ranks: int) -> list[int]:
    """How many of `items` each rank takes, the low ranks one more where they do not divide."""
    base, extra = divmod(items, ranks)
    return [base + (1 if r < extra else 0) for r in range(ranks)]


# --- tensor parallelism --------------------------------------------------------------

def _llama_shaped(layer: Any) -> bool:
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    return (attn is not None and mlp is not None
            and all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj", "n_heads", "n_kv_heads"))
            and all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj")))


def tensor_parallel(model: Any, group: mx.distributed.Group) -> None:
    n = group.size()
    layers = model.layers
    attn = layers[0].self_attn if layers and hasattr(layers[0], "self_attn") else None
    heads = (getattr(attn, "n_heads", 0), getattr(attn, "n_kv_heads", 0)) if attn is not None else (0, 0)
    if hasattr(model, "shard") and heads[0] % n == 0 and heads[1] % n == 0:
        model.shard(group)
        return
    if not all(_llama_shaped(layer) for layer in layers):
        raise ShardingError(f"{type(model).__module__} cannot be split over {n} ranks by tensor "
                            f"parallelism ({heads[0]} heads, {heads[1]} KV heads); try `parallel: pipeline`.")
    kv_heads = heads[1]
    if kv_heads < n:
        raise ShardingError(f"{kv_heads} KV heads cannot be split over {n} ranks; try `parallel: pipeline`.")
    for layer in layers:
        _shard_attention_unevenly(layer.self_attn, group)
        mlp = layer.mlp
        mlp.gate_proj = _sharded(mlp.gate_proj, "all-to-sharded", group)
        mlp.up_proj = _sharded(mlp.up_proj, "all-to-sharded", group)
        mlp.down_proj = _sharded(mlp.down_proj, "sharded-to-all", group)


def _shard_attention_unevenly(attn: Any, group: mx.distributed.Group) -> None:
    """This rank's whole KV groups and their query heads."""
    n, r = group.size(), group.rank()
    per_group = attn.n_heads // attn.n_kv_heads
    groups = even_split(attn.n_kv_heads, n)
    first = sum(groups[:r])
    head_dim = attn.k_proj.weight.shape[0] // attn.n_kv_heads  # rows are never packed
    kv = slice(first * head_dim, (first + groups[r]) * head_dim)
    q = slice(first * per_group * head_dim, (first + groups[r]) * per_group * head_dim)
    attn.q_proj = _sharded(attn.q_proj, "all-to-sharded", group, q)
    attn.k_proj = _sharded(attn.k_proj, "all-to-sharded", group, kv)
    attn.v_proj = _sharded(attn.v_proj, "all-to-sharded", group, kv)
    attn.o_proj = _sharded(attn.o_proj, "sharded-to-all", group, q)
    attn.n_heads = groups[r] * per_group
    attn.n_kv_heads = groups[r]


def _quantized(layer: Any) -> bool:
    return isinstance(layer, nn.QuantizedLinear)


class _OneRank:
    """A group seen as a single rank: mlx.nn builds its sharded linear around a slice already
    cut (its even split would cut again, and refuse sizes the ranks do not divide)."""

    def rank(self) -> int:
        return 0

    def size(self) -> int:
        return 1


def _sharded(layer: Any, sharding: str, group: mx.distributed.Group, part: slice | None = None) -> nn.Module:
    """mlx.nn's sharded linear for `layer`; with `part`, holding that slice of the output
    features (all-to-sharded) or of the input features (sharded-to-all) in place of the even
    split: its forward never assumes the split is even, and collects over `group`."""
    if part is None:
        return shard_linear(layer, sharding, group=group)
    cut = {}
    for k, v in layer.parameters().items():
        if sharding == "all-to-sharded":
            cut[k] = v[part]  # output rows: weight, scales, biases, bias
        elif k == "bias":
            cut[k] = v
        elif _quantized(layer):  # scales and biases per group_size inputs; 32 // bits inputs per packed word
            step = layer.group_size if k in ("scales", "biases") else 32 // layer.bits
            cut[k] = v[:, part.start // step:part.stop // step]
        else:
            cut[k] = v[:, part]
    layer.update({k: mx.contiguous(v) for k, v in cut.items()})
    sharded = shard_linear(layer, sharding, group=_OneRank())
    sharded.group = group
    return sharded


# --- pipeline parallelism ------------------------------------------------------------

def pipeline_parallel(model: Any, group: mx.distributed.Group) -> None:
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "pipeline"):
        inner.pipeline(group)
        return
    layers = getattr(inner, "layers", None)
    if inner is None or layers is None or not hasattr(inner, "embed_tokens") or not hasattr(inner, "norm"):
        raise ShardingError(f"{type(model).__module__} has no pipeline split; try `parallel: tensor`.")
    if any(getattr(layer, "use_sliding", False) for layer in layers):
        raise ShardingError(f"{type(model).__module__} has sliding-window layers, which the "
                            "pipeline stage does not mask; try `parallel: tensor`.")
    if len(layers) < group.size():
        raise ShardingError(f"{len(layers)} layers cannot be split over {group.size()} ranks.")
    model.model = PipelineStage(inner, group)


class PipelineStage(nn.Module):
    """A Llama-shaped inner model's forward for one rank of a pipeline: rank r runs the layers
    after those of ranks r+1..N-1, as mlx-lm's PipelineMixin splits them (rank 0 runs the
    last layers and the head)."""

    def __init__(self, inner: Any, group: mx.distributed.Group):
        super().__init__()
        self.group = group
        self.rank, self.size = group.rank(), group.size()
        split = even_split(len(inner.layers), self.size)
        start = sum(split[self.rank + 1:])
        self.start_idx, self.end_idx = start, start + split[self.rank]
        self.embed_tokens = inner.embed_tokens
        self.layers = inner.layers[self.start_idx:self.end_idx]
        self.norm = inner.norm
        self.sliding_window = getattr(inner, "sliding_window", None)

    def __call__(self, inputs: mx.array, cache: Any = None, input_embeddings: mx.array | None = None) -> mx.array:
        h = input_embeddings if input_embeddings is not None else self.embed_tokens(inputs)
        if cache is None:
            cache = [None] * len(self.layers)
        mask = create_attention_mask(h, cache[0])
        if self.rank < self.size - 1:
            h = mx.distributed.recv_like(h, self.rank + 1, group=self.group)
        for layer, c in zip(self.layers, cache):
            h = layer(h, mask, cache=c)
        if self.rank != 0:
            h = mx.distributed.send(h, self.rank - 1, group=self.group)
            if cache[-1] is not None:  # keep the send in the graph the next step evaluates
                cache[-1].keys = mx.depends(cache[-1].keys, h)
        h = mx.distributed.all_gather(h, group=self.group)[: h.shape[0]]
        return self.norm(h)
