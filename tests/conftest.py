"""Shared fixtures: real imported models (tests.fixtures_models), a live server process, and for the
in-process API tests a temp models.yaml and the engine the views use."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testkit.live import LiveServer

pytest_plugins = ["tests.fixtures_models"]


def pytest_collection_modifyitems(config, items):
    """Keep the markers true: a test on a real-model fixture is marked `model` (in process) or `e2e`."""
    from tests.fixtures_models import MODEL_FIXTURES

    unmarked = [item.nodeid for item in items if MODEL_FIXTURES & set(item.fixturenames)
                and not any(item.iter_markers("model")) and not any(item.iter_markers("e2e"))]
    if unmarked:
        raise pytest.UsageError("these tests use a real model but are marked neither `model` nor `e2e`:\n  "
                                + "\n  ".join(unmarked))


@pytest.fixture(scope="session")
def server(tmp_path_factory, smollm2_dir, smollm2_bf16_dir):
    """The server on the real SmolLM2 import, two dtypes registered to swap between."""
    from tests.fixtures_models import smollm2_entries  # here, not above: pytest loads that plugin first

    root = tmp_path_factory.mktemp("live")
    models = {
        "default": "smollm2",
        "models": [
            *smollm2_entries(smollm2_dir, smollm2_bf16_dir),
            {"id": "absent-model", "source": {"path": str(root / "not-there")}},
        ],
    }
    with LiveServer(root, models).start() as server:
        yield server


@pytest.fixture(scope="session")
def openai_client(server):
    return server.openai()


@pytest.fixture
def models_yaml(settings, tmp_path):
    """Point the registry at a temp models.yaml. `add(model_id, files=None, **fields)` adds one entry
    (fields as models.yaml has them) and returns its folder: without a `source` field the entry gets
    a folder of its own under tmp_path holding `files` (name -> bytes; default a `{}` config.json,
    enough for the registry to call it available)."""
    entries: list[dict] = []
    path = tmp_path / "models.yaml"

    def add(model_id: str, files: dict[str, bytes] | None = None, **fields) -> Path:
        folder = tmp_path / model_id
        if "source" in fields:
            folder = Path(fields["source"]["path"])
        else:
            folder.mkdir()
            for name, data in (files or {"config.json": b"{}"}).items():
                (folder / name).write_bytes(data)
            fields["source"] = {"path": str(folder)}
        entries.append({"id": model_id, **fields})
        path.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
        settings.MLX_SERVER_MODELS = path
        return folder

    return add


@pytest.fixture
def serve(monkeypatch):
    """`serve(engine)` makes the views use that engine; `serve(pieces)` builds a scripted one that
    answers those text pieces (tests/scripted.py). Returns a RecordingEngine around it."""
    import inference.api.anthropic.views as anthropic_views
    import inference.api.control as control
    import inference.api.views as views
    from tests.helpers import RecordingEngine
    from tests.scripted import ScriptedWorld

    def use(engine_or_pieces) -> RecordingEngine:
        engine = engine_or_pieces
        if isinstance(engine_or_pieces, list):
            engine = ScriptedWorld(engine_or_pieces).engine()
        recording = RecordingEngine(engine)
        for module in (views, anthropic_views, control):
            monkeypatch.setattr(module, "get_engine", lambda: recording)
        return recording

    return use


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server the suite may use (MLX_SERVER_TEST_POSTGRES, a URL whose user can
    create databases; .ci/run starts one and exports it). Without it the PostgreSQL tests skip,
    except under CI=true, where PostgreSQL is part of the run and its absence fails."""
    import os

    url = os.environ.get("MLX_SERVER_TEST_POSTGRES")
    if url:
        return url
    reason = ("no PostgreSQL for this run: set MLX_SERVER_TEST_POSTGRES to a postgres:// URL on 127.0.0.1 whose "
              "user may create databases (.ci/run starts a throw-away server and sets it)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, but {reason}")
    pytest.skip(reason)
