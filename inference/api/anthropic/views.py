"""POST /v1/messages and /v1/messages/count_tokens: the Messages request validated, converted
to the chat request and run on the shared path (servable_model, the request's images,
build_chat_request, the engine's one stream), errors in Anthropic's shape."""
from __future__ import annotations

from dataclasses import replace

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from ...reasoning import get_reasoning_format
from ...runtime import get_engine
from ..chat import build_chat_request
from ..endpoint import endpoint, json_response, sse_response, validated_body
from ..generation import Generation
from ..images import load_request_images
from ..logs import CallLog
from ..views import servable_model
from .convert import chat_data
from .errors import render_error
from .messages import MessageCall
from .serializers import MessageCountTokensParamsSerializer, MessageCreateParamsSerializer


async def engine_request(request: HttpRequest, log: CallLog, serializer_class: type):
    """The validated body's model, its tool and reasoning formats, and the engine request."""
    data = chat_data(await validated_body(request, log, serializer_class))
    spec, tool_format = await sync_to_async(servable_model, thread_sensitive=False)(data["model"], log)
    images = await load_request_images(spec, data["messages"], log)
    reasoning = get_reasoning_format(spec.reasoning)
    chat_request = build_chat_request(data, tool_format=tool_format, images=images, reasoning=reasoning)
    return spec, tool_format, reasoning, chat_request


@endpoint("msg_", render_error=render_error)  # the message's id is the row's
async def messages(request: HttpRequest, log: CallLog) -> HttpResponse:
    spec, tool_format, reasoning, chat_request = await engine_request(request, log, MessageCreateParamsSerializer)
    call = MessageCall(log=log, spec=spec, events=get_engine().stream(spec, chat_request),
                       tools=chat_request.tools, tool_format=tool_format, reasoning=reasoning)
    await call.start()
    if log.fields["stream"]:
        return sse_response(call.stream(), log)
    return json_response(await call.complete(), log)


@endpoint("msgtok-", render_error=render_error)
async def count_tokens(request: HttpRequest, log: CallLog) -> HttpResponse:
    """The prompt's tokens as the model's template and tool format render it: a job in the
    engine's queue that renders and generates nothing (the model loads if it must)."""
    spec, tool_format, _, chat_request = await engine_request(request, log, MessageCountTokensParamsSerializer)
    generation = Generation.of(log=log, events=get_engine().stream(spec, replace(chat_request, count_only=True)),
                               tools=None, tool_format=tool_format)
    await generation.start()
    outcome = await generation.whole()
    body = {"input_tokens": outcome.finished.prompt_tokens}
    # Nothing was prefilled: the row's token counts (and the metrics made from them) stay empty.
    log.set(response=body, prompt_tokens=None, cached_tokens=None)
    return json_response(body, log)
