"""The registry is asked once per chat request and off the event loop, and asking is a query:
whether a GGUF can be had offline is read from the cached wheels without unpacking or joining."""
import asyncio
import json
import zipfile
from pathlib import Path

import pytest

import inference.api.views as views
from registry.gguf import sources
from registry.model_folder import context_length, load_estimate
from registry.specs import ModelSpec, Source
from tests.scripted import ScriptedWorld


def wheel(folder: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> None:
    package = name.replace("-", "_")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{package}-1.0-py3-none-any.whl", "w") as archive:
        for member, data in files.items():
            archive.writestr(f"{package}/{member}", data)
        archive.writestr(f"{package}-1.0.dist-info/METADATA", metadata)


def test_a_split_gguf_is_cached_only_with_every_chunk_and_asking_writes_nothing(tmp_path):
    wheel(tmp_path, "split", {"data/SHA256SUMS": f"{'0' * 64}  m.gguf\n"}, ("split-a==1.0", "split-b==1.0"))
    wheel(tmp_path, "split-a", {"data/m.gguf.part00": "x"})
    before = sorted(tmp_path.iterdir())
    assert not sources.pypi_gguf_cached("pypi:split", tmp_path)
    wheel(tmp_path, "split-b", {"data/m.gguf.part01": "y"})
    assert sources.pypi_gguf_cached("pypi:split==1.0", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in before), "split_b-1.0-py3-none-any.whl"])
    assert not sources.pypi_gguf_cached("pypi:absent", tmp_path)
    assert not sources.pypi_gguf_cached("pypi:--index-url=x", tmp_path)


def test_context_length_from_the_spec_then_the_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 777}}))
    assert context_length(ModelSpec(id="a", source=Source("path", str(tmp_path))), tmp_path) == 777
    assert context_length(ModelSpec(id="a", source=Source("path", "/x"), context_length=64), tmp_path) == 64
    assert context_length(ModelSpec(id="a", source=Source("path", "/x")), None) == 4096


@pytest.mark.django_db
def test_the_chat_view_asks_the_registry_once_and_off_the_event_loop(client, settings, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (tmp_path / "models.yaml").write_text(f"models:\n  - {{id: m, source: {{path: {folder}}}}}\n")
    settings.MLX_SERVER_MODELS = tmp_path / "models.yaml"
    engine = ScriptedWorld(["ok"]).engine()
    monkeypatch.setattr(views, "get_engine", lambda: engine)
    on_loop = []
    real_locate = views.locate_spec

    def locate(spec):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real_locate(spec)

    monkeypatch.setattr(views, "locate_spec", locate)
    response = client.post("/v1/chat/completions", content_type="application/json",
                           data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
    assert response.status_code == 200
    assert on_loop == [False]


def test_a_load_is_estimated_as_its_weight_files_plus_kv_for_its_context(tmp_path):
    config = {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576,
              "max_position_embeddings": 8192}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 5000)
    (tmp_path / "tokenizer.json").write_bytes(b"\0" * 999)  # not weights
    spec = ModelSpec(id="m", source=Source("path", str(tmp_path)))
    per_token = 2 * 30 * 3 * 64 * 2  # keys and values, layers, KV heads, head size, bf16
    assert load_estimate(spec, tmp_path) == 5000 + per_token * 8192
    assert load_estimate(ModelSpec(id="m", source=spec.source, context_length=1024), tmp_path) == 5000 + per_token * 1024
    (tmp_path / "config.json").write_text(json.dumps({**config, "torch_dtype": "float32"}))
    assert load_estimate(spec, tmp_path) == 5000 + 2 * per_token * 8192
