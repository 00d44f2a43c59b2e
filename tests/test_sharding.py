"""How a model splits over the ranks of a distributed group (backends/sharding.py), rank by rank
without a group (a group stand-in names the rank), on a small random Llama with SmolLM2's
head layout (9 query heads over 3 KV groups, which 2 ranks cannot share evenly); and the
models.yaml key that asks for it. tests/test_e2e_distributed.py runs the split models over a
real ring."""
from __future__ import annotations

import copy

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx_lm.models import llama

from inference.engine.backends.sharding import PipelineStage, ShardingError, even_split, shard
from registry.specs import DistributedSpec, SpecError, parse_spec

HEAD_DIM, HEADS, KV_HEADS, LAYERS = 32, 9, 3, 5


class Rank:
    """What the split reads of an mx.distributed group: its rank and size."""

    def __init__(self, rank: int, size: int):
        self._rank, self._size = rank, size

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size


def tiny_llama(quantized: bool = False) -> llama.Model:
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs(
        model_type="llama", hidden_size=HEADS * HEAD_DIM, num_hidden_layers=LAYERS, intermediate_size=256,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, rms_norm_eps=1e-5,
        vocab_size=64, tie_word_embeddings=True))
    if quantized:
        nn.quantize(model, group_size=32, bits=4)
    mx.eval(model.parameters())
    return model


def weight(layer) -> mx.array:
    if isinstance(layer, nn.QuantizedLinear) or hasattr(layer, "scales"):
        return mx.dequantize(layer.weight, layer.scales, layer.biases, layer.group_size, layer.bits)
    return layer.weight


def split(model, ranks: int, parallel: str) -> list:
    parts = []
    for r in range(ranks):
        part = copy.deepcopy(model)
        shard(part, Rank(r, ranks), parallel)
        parts.append(part)
    return parts


@pytest.mark.parametrize("quantized", [False, True])
def test_tensor_split_gives_whole_kv_groups_unevenly_and_the_ranks_rebuild_every_weight(quantized):
    whole = tiny_llama(quantized)
    parts = split(whole, 2, "tensor")
    for i, layer in enumerate(whole.layers):
        attns = [p.layers[i].self_attn for p in parts]
        assert [a.n_kv_heads for a in attns] == [2, 1] and [a.n_heads for a in attns] == [6, 3]
        for name in ("q_proj", "k_proj", "v_proj"):  # output rows, in rank order
            joined = mx.concatenate([weight(getattr(a, name)) for a in attns], axis=0)
            assert mx.array_equal(joined, weight(getattr(layer.self_attn, name)))
        joined = mx.concatenate([weight(a.o_proj) for a in attns], axis=1)  # input columns
        assert mx.array_equal(joined, weight(layer.self_attn.o_proj))
        mlps = [p.layers[i].mlp for p in parts]
        assert [weight(m.gate_proj).shape[0] for m in mlps] == [128, 128]
        assert mx.array_equal(mx.concatenate([weight(m.down_proj) for m in mlps], axis=1), weight(layer.mlp.down_proj))


def test_tensor_split_refuses_more_ranks_than_kv_heads():
    with pytest.raises(ShardingError, match="KV heads"):
        shard(tiny_llama(), Rank(0, 4), "tensor")


def test_pipeline_split_gives_rank_0_the_last_layers_and_the_low_ranks_the_extra_one():
    whole = tiny_llama()
    parts = split(whole, 2, "pipeline")
    stages = [p.model for p in parts]
    assert all(isinstance(s, PipelineStage) for s in stages)
    assert [(s.start_idx, s.end_idx) for s in stages] == [(2, 5), (0, 2)]
    for part, stage in zip(parts, stages):  # each holds only its layers, and caches only them
        assert len(part.make_cache()) == len(stage.layers)
        for k, layer in enumerate(stage.layers):
            assert mx.array_equal(layer.mlp.up_proj.weight, whole.layers[stage.start_idx + k].mlp.up_proj.weight)
    assert even_split(30, 2) == [15, 15] and even_split(5, 3) == [2, 2, 1]


def test_one_rank_leaves_the_model_whole():
    model = tiny_llama()
    before = model.layers[0].self_attn.q_proj
    shard(model, Rank(0, 1), "tensor")
    assert model.layers[0].self_attn.q_proj is before


def test_models_yaml_distributed_key():
    def spec(**extra):
        return parse_spec({"id": "m", "source": {"path": "/x"}, **extra}, 0)

    assert spec().distributed is None
    assert spec(distributed={"parallel": "pipeline"}).distributed == DistributedSpec("pipeline")
    for bad in ({"parallel": "data"}, {"parallel": "tensor", "ranks": 2}, "tensor"):
        with pytest.raises(SpecError, match="distributed"):
            spec(distributed=bad)
    with pytest.raises(SpecError, match="only applies to backend: text"):
        spec(distributed={"parallel": "tensor"}, backend="vision")
