"""Where an image request's time goes: decoding the image (Pillow: base64, decode, EXIF, scale),
the model's processor and prompt rendering, the prefill with the vision tower, and decoding,
per fixture, medians of several runs in this one process. The fixtures are tiny, so the
vision tower is cheap here; on a 4B model the prefill share grows, the preprocessing share
shrinks. Each run also decodes the same prompt on mlx-vlm (as a model whose load-time probe
disagreed), in turn with the default path (mlx-vlm prefills, mlx-lm's class decodes:
backends/vision_decode.py): `decode ratio` is the default path's decode tok/s over mlx-vlm's.

    .venv/bin/python -m bench.vision [--reps 5] [--side 1024] [--tokens 32]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import time
from pathlib import Path

from bench.common import machine_info

FIXTURES = ("tiny-gemma3-vision", "tiny-qwen3-vl")
RESULTS = Path(__file__).resolve().parent / "results"


def photo_like(side: int) -> bytes:
    """A JPEG with detail everywhere (gradients plus noise), the size of a phone picture's crop."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side]
    pixels = np.stack([x * 255 // side, y * 255 // side, (x + y) * 127 // side], axis=-1)
    pixels = np.clip(pixels + rng.integers(-30, 30, pixels.shape), 0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def run(name: str, folder: Path, uri: str, reps: int, tokens: int) -> dict:
    from inference.engine.backends.vision import VisionModel
    from inference.engine.types import SamplingParams
    from inference.images import ImageLimits, load_part
    from registry.specs import parse_spec

    spec = parse_spec({"id": name, "source": {"path": str(folder)}, "backend": "vision"}, 0)
    model = VisionModel(spec, folder)
    params = SamplingParams(temperature=0.0)
    runs = []
    for rep in range(reps + 1):  # the first run warms up and is dropped
        part = {"type": "image_url", "image_url": {"url": uri}}
        t0 = time.perf_counter()
        image = load_part(part, "messages[0].content[1]", ImageLimits())
        t1 = time.perf_counter()
        prompt = model.render_prompt(
            [{"role": "user", "content": [{"type": "text", "text": "Describe it."}, part]}], None, [image])
        t2 = time.perf_counter()
        prefill_s, decode_s, n = generate(model, prompt, params, tokens)
        gap, model.image_decode_gap = model.image_decode_gap, None  # the same prompt, decoded on mlx-vlm
        _, vlm_decode_s, vlm_n = generate(model, prompt, params, tokens)
        model.image_decode_gap = gap
        if rep:
            runs.append({"decode_image_ms": (t1 - t0) * 1e3, "processor_ms": (t2 - t1) * 1e3,
                         "prefill_ms": prefill_s * 1e3, "decode_ms": decode_s * 1e3,
                         "tokens": n, "prompt_tokens": len(prompt.tokens),
                         "decode_ratio": (n - 1) / decode_s / ((vlm_n - 1) / vlm_decode_s)})
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    med["decodes_on"] = "mlx-lm's class" if model.image_decode_gap is not None else "mlx-vlm"
    preprocessing = med["decode_image_ms"] + med["processor_ms"]
    med["preprocessing_over_generation"] = preprocessing / (med["prefill_ms"] + med["decode_ms"])
    return med


def generate(model, prompt, params, tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, seconds for the rest, tokens), stopping at an end token
    as the engine does."""
    t0 = time.perf_counter()
    stream = model.token_stream(prompt, 0, model.new_cache(len(prompt.tokens) + tokens, prompt), params, tokens)
    token, _ = next(stream)
    t1 = time.perf_counter()
    n = 1
    while int(token) not in model.end_tokens and n < tokens:
        token, _ = next(stream)
        n += 1
    stream.close()
    return t1 - t0, time.perf_counter() - t1, n


def main() -> None:
    from testkit.cache import TEST_CACHE

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--side", type=int, default=1024, help="the test image is side x side pixels")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    from registry.fixtures import build_fixture

    raw = photo_like(args.side)
    uri = "data:image/jpeg;base64," + base64.b64encode(raw).decode()
    report = {**machine_info(), "image": f"{args.side}x{args.side} JPEG, {len(raw)} bytes", "fixtures": {}}
    for name in FIXTURES:
        folder = build_fixture(name, TEST_CACHE / "models" / name, cache_dir=TEST_CACHE / "downloads")
        report["fixtures"][name] = run(name, folder, uri, args.reps, args.tokens)
    print(f"{report['machine']} · {report['device']} · {report['image']}")
    print(f"{'fixture':<20}{'image ms':>10}{'processor ms':>14}{'prefill ms':>12}{'decode ms':>11}"
          f"{'tokens':>8}{'prep/gen':>10}{'decode ratio':>14}")
    for name, m in report["fixtures"].items():
        print(f"{name:<20}{m['decode_image_ms']:>10.1f}{m['processor_ms']:>14.1f}{m['prefill_ms']:>12.1f}"
              f"{m['decode_ms']:>11.1f}{m['tokens']:>8.0f}{m['preprocessing_over_generation']:>10.2f}"
              f"{m['decode_ratio']:>14.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vision.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
