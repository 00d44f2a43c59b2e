"""The API layer's side of image parts: refuse them for models that cannot see, load them off
the event loop before the request reaches the engine (so a slow URL never holds the model's
worker), and record what the log keeps of them."""
from __future__ import annotations

import time
from typing import Any

from asgiref.sync import sync_to_async

from registry.specs import ModelSpec

from ..images import ImageLimits, InvalidImage, LoadedImage, image_parts, load_images
from .errors import InvalidRequest
from .logs import CallLog


def accepts_images(spec: ModelSpec) -> bool:
    return spec.backend == "vision"


async def load_request_images(spec: ModelSpec, messages: list[dict[str, Any]], log: CallLog) -> list[LoadedImage]:
    """Decode every image of `messages`, in prompt order; a bad one is a 400 naming the part.

    The log gets each image's record (format, size, sha256; never the bytes) and the time
    spent, failed loads included."""
    places = [where for where, _ in image_parts(messages)]
    if not places:
        return []
    log.set(image_count=len(places))
    where = places[0]
    if not accepts_images(spec):
        raise InvalidRequest(
            f"{where}: the model `{spec.id}` does not accept images (its backend is {spec.backend}); "
            "send text only or pick a vision model from GET /v1/models.",
            code="image_not_supported", param=where,
        )
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        return await sync_to_async(load_images, thread_sensitive=False)(messages, ImageLimits.from_settings(), records)
    except InvalidImage as exc:
        raise InvalidRequest(str(exc), code=exc.code, param=exc.details.get("param")) from None
    finally:
        log.set(images=records, image_ms=(time.perf_counter() - started) * 1000)
