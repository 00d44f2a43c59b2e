"""Grammar engines for constrained decoding, compared on this machine: whether each one
installs and imports, what preparing a tokenizer costs, how long the test schema takes to
compile, and the per-token mask time while stepping through a valid document.

    .venv/bin/python -m bench.grammar_engines [--model-dir DIR] [--reps 5]

Engines: llguidance (a project dependency), outlines-core and xgrammar, measured when
importable. Neither of the last two is a project dependency: the committed results come from
`pip install --target DIR --no-deps outlines-core xgrammar apache-tvm-ffi` put on PYTHONPATH,
and xgrammar, whose package requires torch (and triton on Linux x86), imported with a
stand-in `torch` module (its compiler and matcher run on numpy bitmasks). Without
--model-dir it uses SmolLM2-135M-Instruct's tokenizer, imported as bench.common.default_model_dir does.
Timings on a shared 2-core machine are noisy: the load average is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.common import default_model_dir
from testkit.schemas import PROFILE_EXAMPLE, PROFILE_SCHEMA


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:  # importable from PYTHONPATH without metadata
        return "?"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def _mask_steps(tokens: list[int], fill: Callable[[], None], consume: Callable[[int], None]) -> float:
    """Seconds per token for computing a mask then consuming the token, over the document."""
    started = time.perf_counter()
    for token in tokens:
        fill()
        consume(token)
    fill()  # the mask after the last token (end of sequence only)
    return (time.perf_counter() - started) / (len(tokens) + 1)


def bench_llguidance(hf_tokenizer, end_ids: list[int], reps: int) -> dict:
    import llguidance
    import llguidance.hf
    import llguidance.numpy

    llg_tokenizer, prepare_s = _timed(lambda: llguidance.hf.from_tokenizer(hf_tokenizer, eos_token=end_ids))
    options = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
    grammar = llguidance.LLMatcher.grammar_from_json_schema(PROFILE_SCHEMA, overrides=options)
    compiles, per_token = [], []
    document = json.dumps(PROFILE_EXAMPLE, separators=(", ", ": "))
    tokens = hf_tokenizer.encode(document, add_special_tokens=False)
    bitmask = llguidance.numpy.allocate_token_bitmask(1, llg_tokenizer.vocab_size)
    for _ in range(reps):
        matcher, seconds = _timed(lambda: llguidance.LLMatcher(llg_tokenizer, grammar))
        assert not matcher.is_error(), matcher.get_error()
        compiles.append(seconds)
        per_token.append(_mask_steps(
            tokens, lambda: llguidance.numpy.fill_next_token_bitmask(matcher, bitmask, 0),
            lambda t: matcher.consume_token(t) or (_ for _ in ()).throw(ValueError(matcher.get_error())),
        ))
        assert matcher.is_accepting()
    return {"version": _version("llguidance"), "prepare_tokenizer_s": prepare_s, "compile_s": statistics.median(compiles),
            "mask_us_per_token": statistics.median(per_token) * 1e6, "tokens": len(tokens)}


def _gpt2_byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE pieces are spelled in it)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b], extra = chr(256 + extra), extra + 1
    return table


def _byte_level_vocab(hf_tokenizer, skip: set[int]) -> dict[str, list[int]]:
    """token text -> ids, for outlines-core (GPT-2 byte-level pieces decoded to text)."""
    to_byte = {c: b for b, c in _gpt2_byte_chars().items()}
    vocab: dict[str, list[int]] = {}
    for piece, token_id in hf_tokenizer.get_vocab().items():
        if token_id in skip:
            continue
        try:
            text = bytes(to_byte[c] for c in piece).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue  # partial UTF-8 pieces: outlines-core's Python API takes text only
        vocab.setdefault(text, []).append(token_id)
    return vocab


def bench_outlines_core(hf_tokenizer, end_ids: list[int], reps: int) -> dict:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    vocabulary, prepare_s = _timed(lambda: Vocabulary(end_ids[0], _byte_level_vocab(hf_tokenizer, set(end_ids))))
    regex = build_regex_from_schema(json.dumps(PROFILE_SCHEMA), whitespace_pattern="")
    document = json.dumps(PROFILE_EXAMPLE, separators=(",", ":"))
    tokens = hf_tokenizer.encode(document, add_special_tokens=False)
    bitmask = np.zeros((1, (len(hf_tokenizer) + 31) // 32), dtype=np.int32)
    compiles, per_token = [], []
    for _ in range(reps):
        index, seconds = _timed(lambda: Index(regex, vocabulary))
        compiles.append(seconds)
        guide = Guide(index)
        per_token.append(_mask_steps(
            tokens, lambda: guide.write_mask_into(bitmask.ctypes.data, bitmask.size, 4),
            lambda t: guide.advance(t, return_tokens=False),
        ))
        assert guide.is_finished()
    return {"version": _version("outlines-core"), "prepare_tokenizer_s": prepare_s,
            "compile_s": statistics.median(compiles), "mask_us_per_token": statistics.median(per_token) * 1e6,
            "tokens": len(tokens)}


def bench_xgrammar(hf_tokenizer, end_ids: list[int], reps: int) -> dict:
    import xgrammar as xgr

    info, prepare_s = _timed(lambda: xgr.TokenizerInfo.from_huggingface(hf_tokenizer, stop_token_ids=end_ids))
    document = json.dumps(PROFILE_EXAMPLE, separators=(", ", ": "))
    tokens = hf_tokenizer.encode(document, add_special_tokens=False)
    bitmask = np.full(xgr.get_bitmask_shape(1, info.vocab_size), -1, dtype=np.int32)
    compiles, per_token = [], []
    for _ in range(reps):
        compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        compiled, seconds = _timed(lambda: compiler.compile_json_schema(
            PROFILE_SCHEMA, any_whitespace=False, separators=(", ", ": ")))
        compiles.append(seconds)
        matcher = xgr.GrammarMatcher(compiled)
        per_token.append(_mask_steps(
            tokens, lambda: matcher.fill_next_token_bitmask(bitmask), lambda t: matcher.accept_token(t),
        ))
    return {"version": _version("xgrammar"), "prepare_tokenizer_s": prepare_s,
            "compile_s": statistics.median(compiles), "mask_us_per_token": statistics.median(per_token) * 1e6,
            "tokens": len(tokens)}


ENGINES = {"llguidance": bench_llguidance, "outlines-core": bench_outlines_core, "xgrammar": bench_xgrammar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/grammar_engines.json"))
    args = parser.parse_args()
    from transformers import AutoTokenizer

    args.model_dir = args.model_dir or default_model_dir()
    hf_tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    end_ids = [hf_tokenizer.convert_tokens_to_ids("<|im_end|>"), hf_tokenizer.eos_token_id]
    results: dict[str, Any] = {}
    for name, bench in ENGINES.items():
        try:
            results[name] = bench(hf_tokenizer, [i for i in end_ids if i is not None], args.reps)
        except ImportError as exc:
            results[name] = {"error": f"not importable: {exc}"}
        except Exception as exc:  # an engine that imports but cannot run the schema
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model_dir": str(args.model_dir), "vocab": len(hf_tokenizer),
                                    "load_average": os.getloadavg(), "cores": os.cpu_count(),
                                    "engines": results}, indent=2))
    print(f"{'engine':15}{'prepare s':>11}{'compile ms':>12}{'mask us/token':>15}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:15}{r['error']}")
        else:
            print(f"{name:15}{r['prepare_tokenizer_s']:>11.3f}{r['compile_s'] * 1e3:>12.2f}"
                  f"{r['mask_us_per_token']:>15.1f}")


if __name__ == "__main__":
    main()
