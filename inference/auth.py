"""The optional API key: with MLX_SERVER_API_KEY set, /v1 and /metrics need it, as a bearer token
or in `x-api-key` (Anthropic's header).

/health stays open (load balancers and run scripts poll it) and the admin keeps Django's own
login. The check is middleware rather than a DRF authentication class because the chat view
is a plain async Django view.
"""
from __future__ import annotations

import hmac
import re

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest
from django.utils.decorators import sync_and_async_middleware

from .api.errors import ErrorResponse, Unauthorized
from .api.handlers import render_for

PROTECTED_PREFIXES = ("/v1", "/metrics")
CONTROL_PATH = re.compile(r"^/v1/models/.+/(load|unload)$")


def presented_key(request: HttpRequest) -> str:
    """The key the client sent: a bearer token (OpenAI's clients) or `x-api-key` (Anthropic's)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


def refusal(request: HttpRequest) -> ErrorResponse | None:
    """A 401 in the dialect's shape when the request needs the key and lacks it; None when it may pass."""
    key = settings.MLX_SERVER_API_KEY
    if not key or not request.path.startswith(PROTECTED_PREFIXES) or CONTROL_PATH.match(request.path):
        return None  # the control endpoints take an admin login too: they check (api/control.py)
    token = presented_key(request)
    if token and hmac.compare_digest(token.encode(), key.encode()):
        return None
    message = (
        "Incorrect API key provided." if token else
        "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."
    )
    return render_for(request.path)(Unauthorized(message))


@sync_and_async_middleware
def api_key_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return refusal(request) or await get_response(request)

    else:

        def middleware(request):
            return refusal(request) or get_response(request)

    return middleware
