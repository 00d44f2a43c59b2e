"""Every /v1 request gets one log row: this middleware drafts it (`request.log_draft`, a
CallLog the views fill in) and writes it when the response is made. A streamed response
writes its own row when the stream ends (inference/api/logs.py says why)."""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from .api.logs import CallLog

LOGGED_PREFIX = "/v1"


def _finish(draft: CallLog, response: HttpResponseBase) -> bool:
    """Fill the draft from the response; whether the row is this middleware's to write."""
    if not draft.request.path.startswith(LOGGED_PREFIX) or response.streaming or draft.written:
        return False
    draft.respond(response)
    return True


@sync_and_async_middleware
def request_log_middleware(get_response):
    def draft(request: HttpRequest) -> CallLog:
        request.log_draft = CallLog(request)
        return request.log_draft

    if iscoroutinefunction(get_response):

        async def middleware(request):
            log = draft(request)
            response = await get_response(request)
            if _finish(log, response):
                await log.write()
            return response

    else:

        def middleware(request):
            log = draft(request)
            response = get_response(request)
            if _finish(log, response):
                log.save()
            return response

    return middleware
