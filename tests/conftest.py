"""Shared fixtures: real imported models (tests.fixtures_models) and a live server process."""
from __future__ import annotations

import pytest

from tests.fixtures_models import smollm2_entries
from testkit.live import LiveServer

pytest_plugins = ["tests.fixtures_models"]


@pytest.fixture(scope="session")
def server(tmp_path_factory, smollm2_bf16_dir, smollm2_f32_dir):
    """The server on the real SmolLM2 import, two dtypes registered to swap between."""
    root = tmp_path_factory.mktemp("live")
    models = {
        "default": "smollm2",
        "models": [
            *smollm2_entries(smollm2_bf16_dir, smollm2_f32_dir),
            {"id": "absent-model", "source": {"path": str(root / "not-there")}},
        ],
    }
    server = LiveServer(root, models).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openai_client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=120)
