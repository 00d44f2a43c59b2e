"""The embedding backend on the real all-MiniLM-L6-v2 weights, in process: its vectors match the
reference pipeline's (sentence-transformers on torch, tests/reference/minilm_sentence_transformers.json),
related sentences score above unrelated ones, and batching, token-id inputs and Matryoshka cuts
behave as documented."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inference.engine.backends.embedding import EmbeddingModel
from registry.specs import parse_spec

pytestmark = pytest.mark.model

REFERENCE = json.loads((Path(__file__).parent / "reference" / "minilm_sentence_transformers.json").read_text())
SPEC = parse_spec({"id": "minilm", "backend": "embedding", "source": {"path": "unused"}}, 0)


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return EmbeddingModel(SPEC, minilm_dir, batch_tokens=8192)


def embed(model, inputs, **kw):
    return model.embed([model.truncated(t) for t in model.tokenize(inputs)], **kw)


def test_vectors_match_the_reference_pipeline(minilm):
    assert minilm.context_length == REFERENCE["max_seq_length"] == 256
    assert [len(minilm.truncated(t)) for t in minilm.tokenize(REFERENCE["sentences"])] == REFERENCE["prompt_tokens"]
    ours = embed(minilm, REFERENCE["sentences"])
    theirs = np.array(REFERENCE["embeddings"], dtype=np.float32)
    cosine = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1) / np.linalg.norm(ours, axis=1)
    assert cosine.min() >= 0.999, (cosine.min(), REFERENCE["sentences"][int(cosine.argmin())])
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the model's Normalize module


def test_related_sentences_score_above_unrelated_ones(minilm):
    vectors = embed(minilm, REFERENCE["sentences"][:20])  # ten topics, two sentences each
    similarity = vectors @ vectors.T
    for pair in range(10):
        a, b = 2 * pair, 2 * pair + 1
        others = [j for j in range(20) if j not in (a, b)]
        assert similarity[a, b] > similarity[a, others].max(), REFERENCE["sentences"][a]


def test_batches_bound_the_padding_without_changing_the_vectors(minilm_dir, minilm):
    sentences = REFERENCE["sentences"]
    small = EmbeddingModel(SPEC, minilm_dir, batch_tokens=64)  # most inputs alone, the long ones surely
    assert np.allclose(embed(small, sentences), embed(minilm, sentences), atol=1e-5)


def test_token_ids_are_the_texts_own_tokens(minilm):
    text = "The quick brown fox jumps over the lazy dog."
    ids = minilm.tokenizer.encode(text, add_special_tokens=False).ids
    from_text, from_ids = embed(minilm, [text, ids])
    assert np.allclose(from_text, from_ids, atol=1e-6)


def test_matryoshka_cut_keeps_the_leading_dimensions_renormalized(minilm_dir):
    model = EmbeddingModel(replace(SPEC, dimensions=(128,)), minilm_dir, batch_tokens=8192)
    full, = embed(model, ["hello world"])
    cut, = embed(model, ["hello world"], dimensions=128)
    assert cut.shape == (128,) and np.isclose(np.linalg.norm(cut), 1.0, atol=1e-6)
    assert np.allclose(cut, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)
