"""Stored responses: kept with `store` (the default), continued by `previous_response_id`,
read back and deleted by id. Database work: callers run these off the event loop."""
from __future__ import annotations

from typing import Any

from ...models import StoredResponse
from ..errors import InvalidRequest, NotFound

MAX_PAGE = 100


def stored(response_id: str, *, param: str | None = None) -> StoredResponse:
    try:
        return StoredResponse.objects.get(pk=response_id)
    except StoredResponse.DoesNotExist:
        raise NotFound(f"No response with id '{response_id}' is stored (never stored, or deleted).",
                       param=param) from None


def conversation(previous_response_id: str | None) -> list[dict[str, Any]]:
    """Every item of the conversation up to and including the previous response's output."""
    if not previous_response_id:
        return []
    row = stored(previous_response_id, param="previous_response_id")
    return [*row.history, *row.input_items, *row.response["output"]]


def save(body: dict[str, Any], *, history: list[dict[str, Any]], input_items: list[dict[str, Any]]) -> None:
    StoredResponse.objects.create(
        id=body["id"], model=body["model"], status=body["status"],
        previous_response_id=body.get("previous_response_id") or "",
        history=history, input_items=input_items, response=body,
    )


def delete(response_id: str) -> dict[str, Any]:
    row = stored(response_id)
    row.delete()
    return {"id": response_id, "object": "response", "deleted": True}


def _bounded_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise InvalidRequest(f"{name}: must be an integer from {low} to {high}.", param=name)
    return number


def input_item_page(response_id: str, query: dict[str, str]) -> dict[str, Any]:
    """GET /v1/responses/{id}/input_items: `limit` (1-100, default 20), `order` (desc by
    default, as OpenAI), `after` (an item id: the page starts past it)."""
    limit = _bounded_int(query.get("limit"), "limit", 20, 1, MAX_PAGE)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: must be asc or desc.", param="order")
    items = list(stored(response_id).input_items)
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"after: no input item '{after}' in this response.", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {"object": "list", "data": page, "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
