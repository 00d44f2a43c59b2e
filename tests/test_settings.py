"""Misconfiguration stops the start-up with the variable named, the downloads folder is one
setting (MLX_SERVER_DOWNLOADS_DIR, under the data folder by default), and DATABASE_URL picks
the database (SQLite by default)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHOW = "from django.conf import settings; print(settings.MLX_SERVER_DOWNLOADS_DIR, settings.MLX_SERVER_BATCH_SIZE)"


def settings_with(tmp_path, show: str = SHOW, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLX_SERVER_") and k != "DATABASE_URL"}
    environ.update(DJANGO_SETTINGS_MODULE="mlxsite.settings", MLX_SERVER_DATA_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-c", show], cwd=REPO, env=environ, capture_output=True, text=True)


def test_downloads_default_under_the_data_dir_and_overridable(tmp_path):
    assert settings_with(tmp_path).stdout.split() == [str(tmp_path / "downloads"), "1"]
    elsewhere = tmp_path / "wheels"
    out = settings_with(tmp_path, MLX_SERVER_DOWNLOADS_DIR=str(elsewhere))
    assert out.stdout.split()[0] == str(elsewhere)


@pytest.mark.parametrize("env, words", [
    ({"MLX_SERVER_MAX_QUEUE": "lots"}, "MLX_SERVER_MAX_QUEUE='lots' is not an integer"),
    ({"MLX_SERVER_IMAGE_FETCH_TIMEOUT": "soon"}, "MLX_SERVER_IMAGE_FETCH_TIMEOUT='soon' is not a number"),
    ({"MLX_SERVER_BATCH_SIZE": "0"}, "MLX_SERVER_BATCH_SIZE='0' must be at least 1"),
])
def test_a_bad_number_is_improperly_configured(tmp_path, env, words):
    out = settings_with(tmp_path, **env)
    assert out.returncode != 0
    assert f"ImproperlyConfigured: {words}" in out.stderr


DATABASE = "from django.conf import settings; d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'])"


def test_sqlite_is_the_default_and_database_url_picks_another(tmp_path):
    default = settings_with(tmp_path, DATABASE).stdout.split()
    assert default == ["django.db.backends.sqlite3", str(tmp_path / "db.sqlite3")]
    out = settings_with(tmp_path, DATABASE, DATABASE_URL="postgres://127.0.0.1:5432/logs")
    assert out.stdout.split() == ["django.db.backends.postgresql", "logs"], out.stderr


def test_a_database_url_of_no_known_scheme_is_improperly_configured(tmp_path):
    out = settings_with(tmp_path, DATABASE, DATABASE_URL="mangodb://127.0.0.1/logs")
    assert out.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is not a database URL: Scheme 'mangodb://' is unknown" in out.stderr


BUDGET = "from django.conf import settings; print(repr(settings.MLX_SERVER_MEMORY_BUDGET))"


@pytest.mark.parametrize("value, parsed", [("", "0"), ("12000000000", "12000000000"), ("0.6", "0.6"), ("1.0", "1.0")])
def test_the_memory_budget_is_bytes_or_a_fraction_of_the_device(tmp_path, value, parsed):
    assert settings_with(tmp_path, BUDGET, MLX_SERVER_MEMORY_BUDGET=value).stdout.strip() == parsed


@pytest.mark.parametrize("value", ["lots", "-5", "2.5"])
def test_a_bad_memory_budget_is_improperly_configured(tmp_path, value):
    out = settings_with(tmp_path, BUDGET, MLX_SERVER_MEMORY_BUDGET=value)
    assert out.returncode != 0 and f"ImproperlyConfigured: MLX_SERVER_MEMORY_BUDGET={value!r}" in out.stderr
