"""Re-quantize an imported model with MLX's affine quantization (`--quantize 4|8`).

GGUF's block formats have no MLX kernel, so a quantized GGUF is always dequantized first; re-quantizing
the result gives back the smaller size and faster matmuls in a format MLX runs natively. Done naively
(`mlx_lm.utils.quantize_model` on the bf16 import, groups of 64) the result agreed with llama.cpp on the
same GGUF far less than the float import does (tests/test_gguf_parity.py, top-1 with near-ties counted, per
prompt: SmolLM2 4-bit 66/69/97%, 8-bit 75/81/91%; Gemma 3 270M 4-bit 75/84/84%, 8-bit 88/94/97%; against
97-100% in bf16). Three things, each measured, made up that gap; with all three fixed every one of those
is 97-100% (SmolLM2 at 4 bits exactly its float32 import's figures):

- Compute in float32. An MLX quantized matmul runs in the dtype its activations and scales promote to,
  and the CPU kernel (`_qmm_t` in mlx/backend/cpu/quantized.cpp) also *accumulates* in it: with bf16
  scales each 576-1536-term dot product was summed in bf16, which alone cost 8-bit SmolLM2 9-25 points.
  Scales and biases are stored in float32 here, so activations are float32 on every backend (Metal and
  CUDA accumulate in float32 anyway). The tensors left unquantized (norms) are stored in `--dtype`.
- Land on the source's grid. A GGML block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: 32 values; Q4_K, Q5_K: sub-blocks
  of 32) is `scale * q + offset` on at most 2^b levels, which an MLX affine group of 32 with at least b bits
  holds exactly. MLX's own quantizer moves the levels so that zero is exact, re-quantizing every block (SmolLM2's
  Q4_1 at 4 bits, group 32, float32: 62/75/94%). So each group that lies on a grid of at most 2**bits levels is
  stored on that grid, exactly; the others (float sources, Q6_K's 16-value sub-blocks, groups of 64 or 128
  spanning blocks of different scales) are quantized by min and max, like Q4_1.
- Keep the file's mix. llama.cpp's mixed types keep some tensors above the file's base type: Q4_K_M stores
  attn_v and ffn_down at Q6_K (or Q8_0), and tensors whose rows K-quants cannot tile at Q5_0 (most of Gemma 3
  270M). A tensor stored at more bits than the file type's base keeps them (MLX has 5, 6 and 8 bits) when
  that is more than `--quantize` asks: squeezing them to 4 bits cost Gemma 3 270M 12-19 points (283 MiB
  instead of 272). A plain Q8_0 file asked for 4 bits still gets 4 bits everywhere but the embeddings.

The token embedding (also the output head when tied) and an untied head stay at 8 bits at least, as
llama.cpp's own mixes keep them (Q4_K_M stores the embedding as Q8_0 or Q6_K): at 4 bits it alone costs
small models most of their top-1 agreement with llama.cpp (Gemma 3 270M: 23/32 on one prompt, against
31/32 at 8 bits).

The default group size is 32, the block size of every GGML quantized type (MLX has no smaller group);
with 64 or 128, groups span GGML blocks of different scales and are re-quantized, not carried over: fine at
8 bits, but at 4 a second rounding of every weight (SmolLM2 4-bit, group 64: 72/69/94%).
"""

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.utils import load_model, quantize_model, save_model

from .errors import GGUFImportError

BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
DEFAULT_GROUP_SIZE = 32
# Bits of the grid each quantized GGML type stores its blocks on (float types have no grid).
TYPE_BITS = {
    "Q2_K": 2, "Q3_K": 3, "Q4_0": 4, "Q4_1": 4, "Q4_K": 4, "Q5_0": 5, "Q5_1": 5, "Q5_K": 5, "Q6_K": 6, "Q8_0": 8,
}
# llama.cpp's `general.file_type` (enum llama_ftype) -> bits of the file's base type; absent: float (F32,
# F16, BF16) or unknown, where the file has no mix to keep.
FILE_TYPE_BITS = {2: 4, 3: 4, 7: 8, 8: 5, 9: 5, 10: 2, 11: 3, 12: 3, 13: 3, 14: 4, 15: 4, 16: 5, 17: 5, 18: 6}
EMBEDDING_BITS = 8
_ROWS_PER_CHUNK = 1 << 14  # bounds the temporary arrays of one quantization step to a few hundred MB


def requantize(
    folder: Path,
    bits: int,
    group_size: int,
    *,
    dtype: mx.Dtype = mx.bfloat16,
    source_types: dict[str, str] | None = None,
    file_type: int | None = None,
) -> dict:
    """Quantize the float model in FOLDER in place (weights and config.json); returns the new config.

    FOLDER's weights should be float32 (exact dequantized GGUF values). SOURCE_TYPES maps a module path
    (`model.layers.0.mlp.up_proj`) to the GGML type its weight came from, FILE_TYPE is the GGUF's
    `general.file_type`; together they decide which tensors keep more bits than BITS.
    """
    check_settings(bits, group_size)
    model, config = load_model(folder)
    plan = _bits_plan(model, bits, source_types or {}, FILE_TYPE_BITS.get(file_type))
    float_weights = {path: module.weight for path, module in model.named_modules() if path in plan}

    def layer_bits(path: str, module: nn.Module) -> bool | dict:
        if path not in plan:
            return False
        return True if plan[path] == bits else {"group_size": group_size, "bits": plan[path], "mode": "affine"}

    model, config = quantize_model(model, config, group_size, bits, quant_predicate=layer_bits)
    # quantize_model set MLX's own (lazy, never evaluated) quantization; replace it with ours.
    quantized = set()
    for path, module in model.named_modules():
        if path in float_weights and isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            weight = np.array(float_weights[path].astype(mx.float32))
            module.weight, module.scales, module.biases = affine_quantize(weight, module.group_size, module.bits)
            mx.eval(module.parameters())
            quantized.update(f"{path}.{name}" for name in ("weight", "scales", "biases"))
    unquantized = [
        (name, value.astype(dtype))
        for name, value in tree_flatten(model.parameters())
        if name not in quantized and mx.issubdtype(value.dtype, mx.floating)
    ]
    model.update(tree_unflatten(unquantized))
    for old in [*folder.glob("model*.safetensors"), *folder.glob("model.safetensors.index.json")]:
        old.unlink()
    save_model(folder, model)
    return config


def check_settings(bits: int, group_size: int) -> None:
    if bits not in BITS:
        raise GGUFImportError(f"Unsupported quantization: {bits} bits (choose {' or '.join(map(str, BITS))})")
    if group_size not in GROUP_SIZES:
        raise GGUFImportError(f"Unsupported group size {group_size} (choose 32, 64 or 128)")


def _bits_plan(model: nn.Module, bits: int, source_types: dict[str, str], base_bits: int | None) -> dict[str, int]:
    """Module path -> bits, for the modules to quantize (those with `to_quantized`)."""
    plan = {}
    for path, module in model.named_modules():
        if not hasattr(module, "to_quantized") or not hasattr(module, "weight"):
            continue
        layer_bits = bits
        source_bits = TYPE_BITS.get(source_types.get(path, ""))
        if base_bits is not None and source_bits is not None and source_bits > base_bits:
            layer_bits = max(bits, source_bits)
        if path.endswith(("embed_tokens", "lm_head")):
            layer_bits = max(layer_bits, EMBEDDING_BITS)
        plan[path] = layer_bits
    return plan


def affine_quantize(weight: np.ndarray, group_size: int, bits: int) -> tuple[mx.array, mx.array, mx.array]:
    """WEIGHT (float32, rows x columns) as MLX affine quantization: (packed uint32, float32 scales, float32 biases).

    A group whose values lie on an evenly spaced grid of at most 2**bits levels (a GGML block dequantized)
    is stored on that grid; any other group spans its min to max in 2**bits - 1 steps.
    """
    rows, columns = weight.shape
    if columns % group_size or (columns * bits) % 32:
        raise ValueError(f"cannot quantize {weight.shape} in groups of {group_size} at {bits} bits")
    packed = np.empty((rows, columns * bits // 32), np.uint32)
    scales = np.empty((rows, columns // group_size), np.float32)
    biases = np.empty_like(scales)
    for start in range(0, rows, _ROWS_PER_CHUNK):
        chunk = slice(start, start + _ROWS_PER_CHUNK)
        levels, scales[chunk], biases[chunk] = _quantize_groups(weight[chunk], group_size, bits)
        packed[chunk] = _pack(levels, bits)
    return mx.array(packed), mx.array(scales), mx.array(biases)


def _quantize_groups(weight: np.ndarray, group_size: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    groups = weight.reshape(weight.shape[0], -1, group_size)
    low, high = groups.min(axis=-1, keepdims=True), groups.max(axis=-1, keepdims=True)
    span = high - low
    n_levels = (1 << bits) - 1
    # The grid step: the smallest gap between distinct values (float32 rounding of the dequantized values is
    # ~1e-7 of them; 1e-5 of the span keeps it from passing for a gap), or a whole fraction of it (32 of a
    # Q8_0 block's 255 levels may be no two neighbours), if the span is at most n_levels such steps and every
    # value lies on the grid (to 1% of a step).
    gaps = np.diff(np.sort(groups, axis=-1), axis=-1)
    gaps = np.where(gaps > span * 1e-5, gaps, np.inf).min(axis=-1, keepdims=True)
    scale = span / n_levels  # off any grid: min to max in n_levels steps; span 0: scale 0, every value = bias
    flat = groups.reshape(-1, group_size)
    flat_low, flat_span, flat_gaps, flat_scale = (a.reshape(-1, 1) for a in (low, span, gaps, scale))
    pending = np.flatnonzero(np.isfinite(flat_gaps[:, 0]))
    for fraction in range(1, 9):
        steps_in_span = np.rint(flat_span[pending] * fraction / flat_gaps[pending])
        grid = flat_span[pending] / steps_in_span
        position = (flat[pending] - flat_low[pending]) / grid
        fits = np.abs(position - np.rint(position)).max(axis=-1, keepdims=True) < 1e-2
        fits = fits[:, 0] & (steps_in_span[:, 0] <= n_levels)
        flat_scale[pending[fits]] = grid[fits]
        pending = pending[~fits & (steps_in_span[:, 0] < n_levels)]  # a finer fraction only takes more steps
        if not pending.size:
            break
    scale = scale.astype(np.float32)
    levels = np.rint((groups - low) / np.where(scale > 0, scale, 1))
    levels = np.clip(levels, 0, n_levels).astype(np.uint8).reshape(weight.shape)
    return levels, scale[..., 0], low[..., 0]


def _pack(levels: np.ndarray, bits: int) -> np.ndarray:
    """MLX's packing: each row's values as one little-endian bit stream, `bits` bits each, in uint32 words."""
    if bits == 8:
        return np.ascontiguousarray(levels).view(np.uint32)
    if bits == 4:
        return np.ascontiguousarray(levels[:, 0::2] | (levels[:, 1::2] << 4)).view(np.uint32)
    stream = (levels[..., None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(stream.reshape(levels.shape[0], -1), axis=-1, bitorder="little").view(np.uint32)
