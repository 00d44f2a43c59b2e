"""K-quant GGUF tensors (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) against llama.cpp, on a tiny random llama.

The `gguf` package cannot quantize to K types, so tests/tiny_ggufs.py writes "llama-kquants" (hidden 256,
ffn 512, 2 layers) with random K-quant blocks: every layer tensor and the untied output head are K-quants,
each of the five types in attention and in the MLP, with random quants and packed sub-block scales and only
the fp16 d/dmin set. Gemma 3 270M's Q4_K_M file in test_gguf_parity covers Q4_K and Q6_K on a real model;
this is the only coverage of Q2_K, Q3_K and Q5_K, and of all five through every bit of their packing.

Where llama-cpp-python is installed, each K-quant tensor as we read it must also equal, bit for bit, what
ggml's own dequantize_row_qN_K makes of the same blocks.

The import (bf16) is held to test_gguf_parity's bars by that module's tests, whose CASES hold this one
("tiny-kquants-bf16", on the same model_case fixture as every other parity case): the same
tokenization, teacher-forced top-1 agreement with llama.cpp's greedy continuation >= MIN_AGREEMENT with
near-ties counted as there, and mean logit-gap error <= MAX_MEAN_GAP_ERROR. The reference is
tests/reference/tiny_llama-kquants_llamacpp.json (tests/reference/make_llamacpp_reference.py says how it
was made).

Measured when written, strict / near-ties counted, for chat_capital_france, chat_system_haiku and
plain_unicode: 100/100%, 96.9/100%, 78.1/96.9% (9 of plain_unicode's 32 positions are llama.cpp near-ties;
its one real miss, where llama.cpp's margin is 0.36, is an exact tie of our bf16 logits broken the other
way); imported in float32, 96.9/100%, 96.9/100%, 87.5/100%. With a bug planted in gguf-py's dequantizers
the import falls to 0-31% on every prompt: the high bits of Q4_K/Q5_K's 6-bit scales dropped, Q3_K's hmask
not inverted, Q6_K's scales read unsigned, or Q2_K's dmin ignored.
"""

import ctypes
import importlib.util
import json
import os
from pathlib import Path

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest

from registry.gguf.reader import GGUFFile
from testkit.cache import imported
from tests.tiny_ggufs import KQUANT_LAYOUTS, SHAPES

pytestmark = pytest.mark.model

MODEL = "llama-kquants"  # test_gguf_parity.py's case "tiny-kquants-bf16"


@pytest.fixture(scope="module")
def kquant_gguf(tiny_ggufs):
    return tiny_ggufs(MODEL)


@pytest.fixture(scope="module")
def kquant_file(kquant_gguf) -> GGUFFile:
    return GGUFFile(kquant_gguf)


@pytest.fixture(scope="module")
def kquant_import(kquant_gguf):
    """The bf16 import and the model mlx-lm loads from it."""
    folder = imported(kquant_gguf)
    model, _ = mlx_lm.load(str(folder))
    return folder, model


def test_every_k_quant_type_is_in_the_file_at_a_sane_magnitude(kquant_file):
    types = {name: kquant_file.tensor_type(name) for name in kquant_file.tensor_names}
    k_tensors = {name: kind for name, kind in types.items() if kind.endswith("_K")}
    assert {kind for name, kind in k_tensors.items() if ".attn_" in name} == {t.name for t in KQUANT_LAYOUTS}
    assert {kind for name, kind in k_tensors.items() if ".ffn_" in name} == {t.name for t in KQUANT_LAYOUTS}
    assert types["output.weight"] == "Q6_K"
    for name in k_tensors:
        values = kquant_file.load(name)
        assert np.isfinite(values).all(), name
        assert 0.8 < values.std() * np.sqrt(values.shape[1]) < 1.25, (name, values.std())


def test_import_loads_in_mlx_lm_with_the_tiny_shape(kquant_import):
    folder, model = kquant_import
    config = json.loads((folder / "config.json").read_text())
    shape = SHAPES[MODEL]
    expected = {"model_type": "llama", "hidden_size": shape.hidden, "intermediate_size": shape.ffn,
                "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
                "num_key_value_heads": shape.kv_heads, "tie_word_embeddings": False}
    assert {key: config.get(key) for key in expected} == expected
    manifest = json.loads((folder / "gguf_import.json").read_text())
    assert manifest["architecture"] == "llama" and manifest["quantization"] is None
    assert manifest["gguf_tensor_types"] == {"F16": 1, "F32": 5, "Q2_K": 3, "Q3_K": 3, "Q4_K": 3, "Q5_K": 3, "Q6_K": 3}
    # Every weight came through: the untied head, and K-quant projections of the right shapes, all finite.
    layer = model.model.layers[1]
    assert model.lm_head.weight.shape == (model.model.embed_tokens.weight.shape[0], shape.hidden)
    assert layer.self_attn.k_proj.weight.shape == (shape.kv_heads * shape.head_dim, shape.hidden)
    assert layer.mlp.down_proj.weight.shape == (shape.hidden, shape.ffn)
    for weight in (model.lm_head.weight, layer.self_attn.q_proj.weight, layer.mlp.down_proj.weight):
        assert weight.dtype == mx.bfloat16 and bool(mx.isfinite(weight).all())


def _ggml_base() -> ctypes.CDLL:
    """llama-cpp-python's libggml-base (found without importing llama_cpp), or skip."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        pytest.skip("llama-cpp-python is not installed (pip install llama-cpp-python==0.3.36)")
    folder = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(spec.origin).parent / "lib")
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        if (folder / name).is_file():
            return ctypes.CDLL(str(folder / name))
    pytest.skip(f"no libggml-base in {folder}")


def test_k_quants_dequantize_exactly_as_ggml_does(kquant_file):
    ggml = _ggml_base()
    ours, checked = kquant_file, set()
    for tensor in ours._tensors.values():  # the raw blocks, as gguf's reader maps them
        if tensor.tensor_type not in KQUANT_LAYOUTS:
            continue
        dequantize_row = getattr(ggml, f"dequantize_row_{tensor.tensor_type.name[:-2].lower()}_K")
        dequantize_row.argtypes, dequantize_row.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64], None
        blocks = np.ascontiguousarray(tensor.data).view(np.uint8)
        theirs = np.empty(ours.shape(tensor.name), np.float32)
        dequantize_row(blocks.ctypes.data, theirs.ctypes.data, theirs.size)
        np.testing.assert_array_equal(ours.load(tensor.name), theirs, err_msg=f"{tensor.name} ({tensor.tensor_type.name})")
        checked.add(tensor.tensor_type)
    assert checked == set(KQUANT_LAYOUTS)
