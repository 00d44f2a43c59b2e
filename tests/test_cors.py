"""Browsers: CORS for /v1 (django-cors-headers), off by default, origins from
MLX_SERVER_CORS_ORIGINS; a preflight is answered (not 405), before the API key is asked for."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from testkit.live import LiveServer

REPO = Path(__file__).resolve().parent.parent
ALLOWED = "http://app.example:5173"
PREFLIGHT = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
             "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization,content-type,x-stainless-os"}


def preflight(client, origin, path="/v1/chat/completions"):
    return client.options(path, HTTP_ORIGIN=origin, **PREFLIGHT)


@pytest.fixture
def allowed(settings):
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED]
    settings.CORS_ALLOW_ALL_ORIGINS = False


@pytest.mark.django_db
def test_off_by_default_no_origin_gets_cors_headers(client):
    response = preflight(client, ALLOWED)
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in client.get("/v1/models", HTTP_ORIGIN=ALLOWED).headers


@pytest.mark.django_db
def test_a_preflight_from_an_allowed_origin_is_answered(client, allowed):
    response = preflight(client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-stainless-os", "x-api-key"} <= set(allowed_headers.split(", "))


@pytest.mark.django_db
def test_a_refused_origin_gets_no_allow_header(client, allowed):
    response = preflight(client, "http://evil.example")
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in client.get("/v1/models", HTTP_ORIGIN="http://evil.example").headers


@pytest.mark.django_db
def test_answers_carry_the_headers_and_expose_the_request_id(client, allowed):
    response = client.get("/v1/models", HTTP_ORIGIN=ALLOWED)
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


@pytest.mark.django_db
def test_only_the_api_is_shared(client, allowed):
    assert "access-control-allow-origin" not in client.get("/health", HTTP_ORIGIN=ALLOWED).headers


@pytest.mark.django_db
def test_a_preflight_needs_no_api_key_and_a_401_is_readable(client, allowed, settings):
    settings.MLX_SERVER_API_KEY = "secret"
    assert preflight(client, ALLOWED).status_code == 200
    refused = client.get("/v1/models", HTTP_ORIGIN=ALLOWED)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED


def cors_settings(tmp_path, value) -> subprocess.CompletedProcess:
    show = ("from django.conf import settings; "
            "print(settings.CORS_ALLOW_ALL_ORIGINS, settings.CORS_ALLOWED_ORIGINS)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLX_SERVER_")}
    environ.update(DJANGO_SETTINGS_MODULE="mlxsite.settings", MLX_SERVER_DATA_DIR=str(tmp_path),
                   MLX_SERVER_CORS_ORIGINS=value)
    return subprocess.run([sys.executable, "-c", show], cwd=REPO, env=environ, capture_output=True, text=True)


@pytest.mark.parametrize("value, shown", [
    ("", "False []"),
    ("*", "True []"),
    ("http://a.example, https://b.example:8443/", "False ['http://a.example', 'https://b.example:8443']"),
])
def test_the_origins_setting(tmp_path, value, shown):
    assert cors_settings(tmp_path, value).stdout.strip() == shown


def test_a_bad_origin_is_improperly_configured(tmp_path):
    out = cors_settings(tmp_path, "app.example")
    assert out.returncode != 0 and "ImproperlyConfigured" in out.stderr and "'app.example'" in out.stderr


@pytest.mark.e2e
def test_a_real_preflight_against_the_live_server(tmp_path):
    env = {"MLX_SERVER_CORS_ORIGINS": ALLOWED, "MLX_SERVER_API_KEY": "secret"}
    models = {"models": [{"id": "absent", "source": {"path": str(tmp_path / "none")}}]}
    with LiveServer(tmp_path, models, env=env).start() as server:
        headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "authorization, content-type"}
        ok = requests.options(f"{server.url}/v1/chat/completions", headers=headers, timeout=10)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ALLOWED
        refused = requests.options(f"{server.url}/v1/chat/completions",
                                   headers={**headers, "Origin": "http://evil.example"}, timeout=10)
        assert "access-control-allow-origin" not in refused.headers
        listing = requests.get(f"{server.url}/v1/models", timeout=10,
                               headers={"Origin": ALLOWED, "Authorization": "Bearer secret"})
        assert listing.status_code == 200 and listing.headers["access-control-allow-origin"] == ALLOWED
