"""The /v1/responses endpoints. Creating one goes the chat path: the items become chat
messages and tools, `build_chat_request` makes the engine request, `Generation` runs it."""
from __future__ import annotations

import re
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from .. import views
from ..chat import build_chat_request
from ..endpoint import endpoint, json_response, sse_response, validated_body
from ..errors import APIError, InvalidRequest
from ..images import load_request_images
from ..logs import CallLog
from ...reasoning import get_reasoning_format
from . import store
from .call import ResponseCall
from .items import chat_messages, chat_response_format, chat_tool_choice, chat_tools, input_items
from .serializers import CreateResponseSerializer

LOGPROBS = "message.output_text.logprobs"

# The chat path names chat's params; a client of this API sent these.
_PARAMS = ((re.compile(r"^tools\[(\d+)\]\.function\."), r"tools[\1]."),
           (re.compile(r"^response_format\.json_schema\."), "text.format."),
           (re.compile(r"^messages$"), "input"))


def own_param(error: APIError) -> APIError:
    """An error of the chat path, its param as this API names it."""
    if error.param:
        for pattern, name in _PARAMS:
            renamed = pattern.sub(name, error.param)
            if renamed != error.param:
                error.message = error.message.replace(error.param, renamed)
                error.param = renamed
                break
    return error


def chat_shaped(data: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The request as chat completions would have it: what build_chat_request takes."""
    return {
        "messages": chat_messages(items, data.get("instructions")),
        "tools": chat_tools(data.get("tools")),
        "tool_choice": chat_tool_choice(data.get("tool_choice")),
        "parallel_tool_calls": data.get("parallel_tool_calls"),
        "max_completion_tokens": data.get("max_output_tokens"),
        "temperature": data.get("temperature"),
        "top_p": data.get("top_p"),
        "response_format": chat_response_format(data.get("text")),
        "reasoning_effort": (data.get("reasoning") or {}).get("effort"),  # a template variable, as chat's
        "logprobs": wants_logprobs(data),
        "top_logprobs": data.get("top_logprobs"),
        "keep_alive": data.get("keep_alive"),
    }


def wants_logprobs(data: dict[str, Any]) -> bool:
    """OpenAI returns the text's log probabilities when `include` asks for them; a
    `top_logprobs` above 0 asks too (the Agents SDK sends both)."""
    return LOGPROBS in (data.get("include") or []) or bool(data.get("top_logprobs"))


@endpoint("resp_")  # the response's id is the row's
async def create_response(request: HttpRequest, log: CallLog) -> HttpResponse:
    data = await validated_body(request, log, CreateResponseSerializer)
    history = await sync_to_async(store.conversation)(data.get("previous_response_id"))
    spec, tool_format = await sync_to_async(views.servable_model, thread_sensitive=False)(data["model"], log)
    items = input_items(data["input"])
    chat = chat_shaped(data, [*history, *items])
    try:
        if not chat["messages"]:
            raise InvalidRequest("input: there is nothing to answer (no messages).", param="input")
        images = await load_request_images(spec, chat["messages"], log)
        reasoning = get_reasoning_format(spec.reasoning)
        chat_request = build_chat_request(chat, tool_format=tool_format, images=images, reasoning=reasoning)
    except APIError as error:
        raise own_param(error) from None

    async def keep(body: dict[str, Any]) -> None:
        await sync_to_async(store.save)(body, history=history, input_items=items)

    call = ResponseCall(
        log=log, spec=spec, events=views.get_engine().stream(spec, chat_request), request=data,
        tools=chat_request.tools, tool_format=tool_format, reasoning=reasoning,
        logprobs=chat_request.params.logprobs is not None,
        store=None if data.get("store") is False else keep,
    )
    await call.start()
    if data.get("stream"):
        return sse_response(call.stream(), log)
    return json_response(await call.complete(), log)


@endpoint("req-", methods=("GET", "DELETE"))
async def response_detail(request: HttpRequest, log: CallLog, response_id: str) -> HttpResponse:
    if request.method == "DELETE":
        return json_response(await sync_to_async(store.delete)(response_id), log)
    row = await sync_to_async(store.stored)(response_id)
    return json_response(row.response, log)


@endpoint("req-", methods=("GET",))
async def response_input_items(request: HttpRequest, log: CallLog, response_id: str) -> HttpResponse:
    return json_response(await sync_to_async(store.input_item_page)(response_id, request.GET.dict()), log)
