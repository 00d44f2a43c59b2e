"""Load and unload control: POST /v1/models/{id}/load and /unload.

Either right is enough: the API key (when one is set), or an admin (staff) session of Django's
login, whose POST must then carry the CSRF token as any form of the admin does. Without a key
set the endpoints are as open as the rest of /v1. The key middleware leaves these paths to
`require_control` so a signed-in admin needs no key.
"""
from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from ..auth import presented_key
from ..engine import Failed, Finished
from ..runtime import get_engine
from .endpoint import endpoint, json_response
from .errors import Forbidden, Unauthorized
from .generation import api_error_of
from .logs import CallLog
from .responses import ModelSerializer
from .views import model_entry, resolve_model, servable_model

async def require_control(request: HttpRequest) -> None:
    """401 without the key or a session, 403 for a session that is not staff (or no CSRF token)."""
    key = settings.MLX_SERVER_API_KEY
    token = presented_key(request)
    if not key or (token and hmac.compare_digest(token.encode(), key.encode())):
        return
    user = await request.auser()
    if not user.is_authenticated:
        raise Unauthorized("Incorrect API key provided." if token else
                           "Loading and unloading models needs the API key (Authorization: Bearer <key>) "
                           "or an admin login.")
    if not user.is_staff:
        raise Forbidden("Only staff users may load or unload models.")
    refused = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if refused is not None:
        raise Forbidden("A session's POST needs its CSRF token (X-CSRFToken).")


async def control(request: HttpRequest, log: CallLog, model: str, *, unload: bool) -> HttpResponse:
    await require_control(request)
    if unload:
        spec = await sync_to_async(resolve_model, thread_sensitive=False)(model)
        log.set(resolved_model=spec.id)
    else:
        spec = await sync_to_async(resolve_model, thread_sensitive=False)(model)
        spec, _ = await sync_to_async(servable_model, thread_sensitive=False)(model, log, spec.capabilities[0])
    engine = get_engine()
    events = engine.unload(spec) if unload else engine.stream(spec, None)
    async for event in events:
        if isinstance(event, Failed):
            raise api_error_of(event.error)
        if isinstance(event, Finished):
            break
    entry = await sync_to_async(model_entry, thread_sensitive=False)(spec)
    return json_response(ModelSerializer(entry).data, log)


@endpoint("ctl-")
async def load_model(request: HttpRequest, log: CallLog, model: str) -> HttpResponse:
    return await control(request, log, model, unload=False)


@endpoint("ctl-")
async def unload_model(request: HttpRequest, log: CallLog, model: str) -> HttpResponse:
    return await control(request, log, model, unload=True)
