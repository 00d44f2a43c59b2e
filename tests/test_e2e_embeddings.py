"""/v1/embeddings on a live server with the real all-MiniLM-L6-v2 beside SmolLM2: the openai SDK
(floats and its default base64), LangChain's OpenAIEmbeddings, responses held to OpenAI's schema,
bad input answered 4xx and logged, the embedding slot beside the chat model, and schemathesis."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openai
import pytest
import requests

from testkit.live import LiveServer
from tests import helpers

pytestmark = pytest.mark.e2e

EMBED, CHAT = "all-minilm-l6-v2", "smollm2-135m-instruct"
KEY = "sk-embed-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
REFERENCE = json.loads((Path(__file__).parent / "reference" / "minilm_sentence_transformers.json").read_text())


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory, minilm_dir, smollm2_dir):
    root = tmp_path_factory.mktemp("embed")
    models = {"default": CHAT, "models": [
        {"id": CHAT, "aliases": ["smollm2"], "source": {"path": str(smollm2_dir)}, "context_length": 2048},
        {"id": EMBED, "aliases": ["minilm"], "source": {"path": str(minilm_dir)}, "backend": "embedding"},
    ]}
    with LiveServer(root, models, env={"MLX_SERVER_API_KEY": KEY}).start() as server:
        yield server


@pytest.fixture(scope="module")
def client(embed_server):
    return embed_server.openai(api_key=KEY, timeout=300)


def post(server, body):
    return requests.post(f"{server.url}/v1/embeddings", json=body, headers=AUTH, timeout=300)


def cosine(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_sdk_gets_the_reference_vectors_as_floats_and_as_base64(embed_server, client):
    sentences = REFERENCE["sentences"][:8]
    floats = client.embeddings.create(model=EMBED, input=sentences, encoding_format="float")
    default = client.embeddings.create(model="minilm", input=sentences)  # the SDK asks for base64
    assert [d.index for d in floats.data] == list(range(8)) and floats.model == EMBED
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == sum(REFERENCE["prompt_tokens"][:8])
    for ours, decoded, theirs in zip(floats.data, default.data, REFERENCE["embeddings"]):
        assert len(ours.embedding) == 384 and cosine(ours.embedding, theirs) >= 0.999
        assert np.allclose(ours.embedding, decoded.embedding, atol=1e-7)
    for encoding in ("float", "base64"):
        body = post(embed_server, {"model": EMBED, "input": sentences[:2], "encoding_format": encoding}).json()
        helpers.assert_schema(body, "openai/CreateEmbeddingResponse")
    row = embed_server.log_rows()[-1]
    assert (row["input_count"], row["prompt_tokens"]) == (2, sum(REFERENCE["prompt_tokens"][:2]))
    assert "not logged" in row["response_body"] and len(row["response_body"]) < 500  # never the vectors


def test_token_id_inputs_and_one_string(client):
    one = client.embeddings.create(model=EMBED, input="hello world", encoding_format="float").data[0].embedding
    # all-MiniLM's own ids of "hello world" (without [CLS]/[SEP], which the server adds)
    ids = client.embeddings.create(model=EMBED, input=[[7592, 2088]], encoding_format="float").data[0].embedding
    assert cosine(one, ids) > 0.99999
    assert cosine(one, REFERENCE["embeddings"][REFERENCE["sentences"].index("hello world")]) >= 0.999


def test_langchain_openai_embeddings(embed_server):
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(model=EMBED, base_url=f"{embed_server.url}/v1", api_key=KEY,
                                  check_embedding_ctx_length=False, max_retries=0)
    query = embeddings.embed_query("A kitten is resting on the rug.")
    documents = embeddings.embed_documents(["The cat sat on the mat.", "The stock market fell sharply today."])
    assert len(query) == 384
    assert cosine(query, documents[0]) > cosine(query, documents[1])


def test_over_long_input_is_a_400_naming_it_unless_truncation_is_asked(embed_server, client):
    long = "word " * 400
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=EMBED, input=["short", long])
    assert refused.value.body["param"] == "input[1]" and refused.value.body["code"] == "context_length_exceeded"
    cut = post(embed_server, {"model": EMBED, "input": ["short", long], "truncate": True}).json()
    assert cut["usage"]["prompt_tokens"] == 3 + 256
    with pytest.raises(openai.BadRequestError) as shortened:
        client.embeddings.create(model=EMBED, input="a", dimensions=128)
    assert shortened.value.body["param"] == "dimensions"
    assert len(client.embeddings.create(model=EMBED, input="a", dimensions=384).data[0].embedding) == 384


def test_bad_input_is_4xx_logged_and_the_server_keeps_serving(embed_server, client):
    before = len(embed_server.log_rows())
    cases = [{"input": ""}, {"input": ["a"] * 10_000}, {"input": [{"x": [1]}]}, {"input": "a", "encoding_format": "hex"},
             {"input": [[1, 99_999_999]]}]
    for case in cases:
        response = post(embed_server, {"model": EMBED, **case})
        assert response.status_code == 400, (case, response.text)
        helpers.assert_schema(response.json(), "openai/ErrorResponse")
    rows = embed_server.log_rows()[before:]
    assert [r["status_code"] for r in rows] == [400] * len(cases)
    assert client.embeddings.create(model=EMBED, input="still here").data


def test_embedding_and_chat_models_stay_resident_together(embed_server, client):
    helpers.chat(client, model=CHAT, messages=helpers.OK_MESSAGES, max_tokens=4)
    client.embeddings.create(model=EMBED, input="a")
    helpers.chat(client, model=CHAT, messages=helpers.OK_MESSAGES, max_tokens=4)
    health = requests.get(f"{embed_server.url}/health", timeout=30).json()
    assert (health["loaded_model"], health["embedding_model"], health["swaps"]) == (CHAT, EMBED, 0)
    rows = [r for r in embed_server.log_rows() if r["endpoint"] == "/v1/chat/completions"]
    assert all(not r["swapped_from"] for r in rows)
    metrics = requests.get(f"{embed_server.url}/metrics", headers=AUTH, timeout=30).text
    assert f'mlx_server_prompt_tokens_total{{model="{EMBED}"}}' in metrics


def test_schemathesis_finds_no_server_errors_on_embeddings(embed_server, tmp_path):
    schema = requests.get(f"{embed_server.url}/v1/openapi.json", headers=AUTH, timeout=30).json()
    schema["paths"] = {"/v1/embeddings": schema["paths"]["/v1/embeddings"]}
    request = schema["components"]["schemas"]["CreateEmbedding"]["properties"]
    for variant in request["input"]["oneOf"]:
        if variant["type"] == "array":
            variant["maxItems"] = 8
    before = len(embed_server.log_rows())
    for mode, model, examples in (("positive", [EMBED, "minilm"], 30), ("negative", ["no-such-model"], 30)):
        request["model"] = {"type": "string", "enum": model}
        run = helpers.schemathesis_run(embed_server, schema, tmp_path, mode, examples, key=KEY)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    rows = embed_server.log_rows()[before:]
    assert len(rows) > 20 and not [r for r in rows if r["status_code"] >= 500]
    assert any(r["status_code"] == 200 for r in rows)
