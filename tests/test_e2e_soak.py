"""The soak's CI variant (testkit/soak.py; the long run is bench/soak.py): ~3 minutes of mixed
traffic from 4 clients over every endpoint, chat's variants, swaps, images, forced tools,
response_format and bad input. No 5xx, no client-side failure, the server alive, every
request in the log, bad input answered 4xx; memory is sampled (its flatness is the long run's
figure: 3 minutes of swaps between models of different sizes is too short to judge it)."""
from __future__ import annotations

import os

import pytest

from testkit.live import LiveServer
from testkit.soak import Soak, models

pytestmark = [pytest.mark.e2e, pytest.mark.model]

SECONDS = float(os.environ.get("MLX_SOAK_SECONDS", "180"))


def test_soak(tmp_path, smollm2_dir, smollm2_bf16_dir, tiny_qwen3_vl_dir, minilm_dir):
    with LiveServer(tmp_path, models(smollm2_dir, smollm2_bf16_dir, tiny_qwen3_vl_dir, minilm_dir),
                    {"MLX_SERVER_MAX_QUEUE": "64"}).start() as server:
        report = Soak(server, SECONDS).run(has_embeddings=True)
    summary = {k: v for k, v in report.items() if k != "samples"}
    assert report["server_alive"] and report["server_5xx"] == 0, summary
    assert report["client_error_count"] == 0, summary
    assert report["log_rows"] == report["requests"], summary
    kinds = report["by_kind"]
    assert set(kinds["bad input"]) == {"400"} and set(kinds["bad json"]) == {"400"}, kinds
    assert set(kinds["unknown model"]) == {"404"}, kinds
    for kind in ("chat", "chat stream", "messages", "responses"):
        assert set(kinds[kind]) == {"200"}, kinds
    assert all(s["rss"] > 0 for s in report["samples"]) and len(report["samples"]) >= SECONDS / 4
