"""Our GGUF imports against llama.cpp on the same files (references made by tests/reference/make_llamacpp_reference.py).

Models: SmolLM2-135M-Instruct (llama, Q4_1) and Gemma 3 270M (gemma3, Q4_K_M: Q4_K, Q6_K, Q5_0, Q8_0), and
tiny random GGUFs of llama, qwen2, qwen3 and gemma3 written the way llama.cpp's converter writes them
(tests/tiny_ggufs.py; F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), imported in bf16 (SmolLM2 in f32 too),
and re-quantized by MLX: the real models to 4 bits, the tiny ones to 8.

Tokenization must match exactly. The model is checked teacher-forced: llama.cpp's prompt plus its greedy
continuation go through our model in one pass, and at each generated position we compare our top-1 with
llama.cpp's choice.

The two cannot agree bit for bit. llama.cpp multiplies quantized weights with activations quantized to
8 bits and keeps an f16 KV cache; we run the dequantized weights in bf16/f32. That moves the gap between
the top two logits by about 0.1 on average -- as much as bf16 vs f32 rounding moves ours -- so where
llama.cpp's own top two were closer than NEAR_TIE and we took its runner-up, that is noise, not a
disagreement. The table printed at the end gives both the strict and the near-tie-adjusted figures.

Imports re-quantized by MLX (`quantize=`, registry/gguf/requantize.py) are held to the issue's bars: 90%
at 4 bits, 95% at 8 (near-ties counted as above), and the same logit-gap bound. Strict / near-ties counted,
per prompt, when written:

  smollm2-q4       96.9/96.9  90.6/100  96.9/100   (110 MiB, import 9-15 s; as smollm2-f32)
  smollm2-q8       96.9/96.9  90.6/100  96.9/100   (161 MiB; not run here, see below)
  gemma3-270m-q4   100/100    96.9/100  100/100    (283 MiB: 4, 5, 6 and 8 bits as the Q4_K_M file has them;
                                                    import 37-56 s)
  gemma3-270m-q8   96.9/100   96.9/100  100/100    (320 MiB; not run here)
  tiny-*-q8        90.6-100 / 96.9-100

Before registry/gguf/requantize.py was reworked they missed by far (SmolLM2 4-bit 62-94/66-97%, 8-bit
72-91/75-91%; Gemma 3 270M 4-bit 72-84/75-84%, 8-bit 88-97/88-97%): the bf16 scales made MLX's CPU kernel accumulate every quantized
dot product in bf16, MLX's quantizer moved every level of the GGUF's blocks instead of keeping them, and
Gemma's Q5_0/Q6_K/Q8_0 tensors were squeezed to 4 bits; the module docstring there has the figures.

Known losses, kept out of the bars: re-quantizing to 4 bits in groups of 64 (`--group-size 64`) puts two
GGML blocks of different scales on one grid, a second 4-bit rounding of every weight: SmolLM2 q4 g64
68.8/71.9, 65.6/68.8, 87.5/93.8%; Gemma 3 270M q4 g64 passes 90% (84/94, 84/97, 97/97%) but its logit
gaps are off by 0.45-0.65 on average. The tiny random GGUFs at 4 bits store Q5_x, Q8_0 and F16/BF16 tensors
under a Q8_0 file type, so those are re-quantized to 4 bits too: tiny llama 84/88, 78/88, 91/94%; qwen2
69/78, 91/94, 88/91%; qwen3 78/81, 97/97, 78/81%; gemma3 84/88, 97/97, 84/91% -- not a parity case.

gemma3-270m-q4 (Case("gemma3_270m_llamacpp.json", "gemma3_gguf", quantize=4, min_agreement=0.90); import
~46 s, run ~40 s), smollm2-q8 and gemma3-270m-q8 are left out of CASES only for time (CI must stay under
30 minutes on 2 cores; add them back to check by hand): quantized matmuls on MLX's CPU backend
are scalar loops, 30-60 s a real model here, and the 8-bit path is the 4-bit one with other bits (the tiny
q8 cases run it on every architecture in seconds).
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest

from testkit.cache import imported

pytestmark = pytest.mark.model

REFERENCES = Path(__file__).resolve().parent / "reference"
MIN_AGREEMENT = 0.95
MIN_AGREEMENT_4_BIT = 0.90  # the bar where we re-quantize to 4 bits
TINY_ARCHS = ("llama", "qwen2", "qwen3", "gemma3")
NEAR_TIE = 0.25  # logits
# Mean |our gap - llama.cpp's gap| between its top two tokens; ~0.1-0.17 measured on SmolLM2, ~0.5-0.8 with
# rope_theta off by 10x.
MAX_MEAN_GAP_ERROR = 0.3


@dataclass(frozen=True)
class Case:
    reference: str
    gguf: str  # fixture giving the GGUF path, or "tiny:<arch>"
    dtype: str = "bfloat16"
    quantize: int | None = None

    min_agreement: float = MIN_AGREEMENT


CASES = {
    "smollm2-bf16": Case("smollm2_llamacpp.json", "smollm2_gguf"),
    "smollm2-f32": Case("smollm2_llamacpp.json", "smollm2_gguf", dtype="float32"),
    "smollm2-q4": Case("smollm2_llamacpp.json", "smollm2_gguf", quantize=4, min_agreement=MIN_AGREEMENT_4_BIT),
    "gemma3-270m-bf16": Case("gemma3_270m_llamacpp.json", "gemma3_gguf"),
    **{f"tiny-{arch}-bf16": Case(f"tiny_{arch}_llamacpp.json", f"tiny:{arch}") for arch in TINY_ARCHS},
    **{f"tiny-{arch}-q8": Case(f"tiny_{arch}_llamacpp.json", f"tiny:{arch}", quantize=8) for arch in TINY_ARCHS},
    # Q2_K..Q6_K on a tiny random llama; its own checks are in test_gguf_parity_kquants.py.
    "tiny-kquants-bf16": Case("tiny_llama-kquants_llamacpp.json", "tiny:llama-kquants"),
}


@pytest.fixture(scope="module")
def agreement_rows(request):
    """Rows of the agreement table, printed after the module's tests (whatever -q or -s say)."""
    rows: list[str] = []
    yield rows
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and rows:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_sep("-", "top-1 agreement with llama.cpp's greedy continuation (teacher-forced)")
            reporter.write_line(f"{'model':<18} {'case':<22} {'strict':>8} {'w/ near-ties':>13} {'min':>5}")
            for row in rows:
                reporter.write_line(row)


@pytest.fixture(scope="module", params=list(CASES))
def model_case(request, tiny_ggufs) -> tuple[str, Case, dict, object, object]:
    name, case = request.param, CASES[request.param]
    if case.gguf.startswith("tiny:"):
        gguf = tiny_ggufs(case.gguf.removeprefix("tiny:"))
    else:
        gguf = request.getfixturevalue(case.gguf)
    reference = json.loads((REFERENCES / case.reference).read_text())
    with gguf.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    assert reference["gguf"]["sha256"] == digest, (
        f"{case.reference} was made from another GGUF than {gguf.name}; if tests/tiny_ggufs.py changed, "
        "regenerate the reference (see make_llamacpp_reference.py)"
    )
    folder = imported(gguf, case.dtype, case.quantize)
    model, tokenizer = mlx_lm.load(str(folder))
    return name, case, reference, model, tokenizer


@pytest.fixture(scope="module")
def teacher_forced(model_case) -> dict[str, np.ndarray]:
    """Per prompt, our float32 logits at the positions where llama.cpp generated (one forward pass each).

    The output head runs only at those positions: it is most of a small model's cost per token (Gemma 3's
    262k-token vocabulary), and mlx-lm's llama, qwen2, qwen3 and gemma3_text apply nothing after it.
    """
    _, _, reference, model, _ = model_case
    head = getattr(model, "lm_head", None)
    head = model.model.embed_tokens.as_linear if head is None else head  # tied embeddings
    logits = {}
    for prompt in reference["cases"]:
        tokens, greedy = prompt["tokens"], prompt["greedy"]
        hidden = model.model(mx.array([tokens + greedy[:-1]]))[:, len(tokens) - 1 :]
        logits[prompt["name"]] = np.array(head(hidden)[0].astype(mx.float32))
    return logits


def test_tokenizer_matches_llama_cpp(model_case):
    name, _, reference, _, tokenizer = model_case
    for prompt in reference["cases"]:
        assert tokenizer.encode(prompt["text"]) == prompt["tokens"], f"{name}: {prompt['name']}"
        if "messages" in prompt:
            rendered = tokenizer.apply_chat_template(prompt["messages"], add_generation_prompt=True, tokenize=False)
            assert rendered == prompt["rendered"], f"{name}: {prompt['name']}"


def test_teacher_forced_top1_matches_llama_cpp_greedy(model_case, teacher_forced, agreement_rows):
    name, case, reference, _, _ = model_case
    failures = []
    for prompt in reference["cases"]:
        greedy, runner_up, margins = prompt["greedy"], prompt["runner_up"], prompt["margins"]
        ours = teacher_forced[prompt["name"]].argmax(axis=-1).tolist()
        differ = [i for i, token in enumerate(ours) if token != greedy[i]]
        near_ties = [i for i in differ if margins[i] < NEAR_TIE and ours[i] == runner_up[i]]
        strict = 1 - len(differ) / len(greedy)
        agreement = strict + len(near_ties) / len(greedy)
        agreement_rows.append(
            f"{name:<18} {prompt['name']:<22} {strict:>8.1%} {agreement:>13.1%} {case.min_agreement:>5.0%}"
        )
        if agreement < case.min_agreement:
            failures.append(
                f"{prompt['name']}: top-1 agrees with llama.cpp at {agreement:.1%} of {len(greedy)} positions counting "
                f"near-ties ({strict:.1%} strictly), need {case.min_agreement:.0%}; differs at {differ}, "
                f"llama.cpp margins there {[margins[i] for i in differ]}"
            )
    assert not failures, f"{name}:\n" + "\n".join(failures)


def test_real_models_agree_strictly_over_all_positions(model_case, teacher_forced):
    """The issue's own measure, pooled over the three prompts, with no near-tie allowance, for the real
    models in the dtype the server uses by default (SmolLM2 bf16: 93/96 when written; Gemma 3 270M 93/96)."""
    name, case, reference, _, _ = model_case
    if name not in ("smollm2-bf16", "gemma3-270m-bf16"):
        pytest.skip("the strict pooled bar is held by the real models at the default dtype")
    agree = total = 0
    for prompt in reference["cases"]:
        ours = teacher_forced[prompt["name"]].argmax(axis=-1).tolist()
        agree += sum(a == b for a, b in zip(ours, prompt["greedy"]))
        total += len(prompt["greedy"])
    assert agree / total >= MIN_AGREEMENT, f"{agree}/{total}"


def test_logit_gaps_track_llama_cpp(model_case, teacher_forced):
    name, case, reference, _, _ = model_case
    failures = []
    for prompt in reference["cases"]:
        logits, positions = teacher_forced[prompt["name"]], np.arange(len(prompt["greedy"]))
        ours = logits[positions, prompt["greedy"]] - logits[positions, prompt["runner_up"]]
        error = float(np.abs(ours - np.array(prompt["margins"])).mean())
        if error > MAX_MEAN_GAP_ERROR:
            failures.append(f"{prompt['name']}: mean |gap error| {error:.3f} > {MAX_MEAN_GAP_ERROR} logits")
    assert not failures, f"{name}:\n" + "\n".join(failures)
