"""Embeddings: validated request -> one engine job in the embedding slot -> OpenAI's list of
vectors, as JSON floats or base64 (little-endian float32, what the openai SDK asks for by
default and decodes with numpy).

The body is built here rather than through a DRF serializer: a 256-input answer holds ~100,000
floats, which a per-item serializer field would render several times slower than the model
makes them (responses.py's EmbeddingResponseSerializer documents the shape for the schema).
"""
from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

from registry.specs import ModelSpec

from ..engine import Embedded, EmbedRequest, Failed, Finished, JobStream
from ..models import RequestLog
from .errors import ServerError
from .generation import api_error_of
from .logs import CallLog


def embed_request(data: dict[str, Any]) -> EmbedRequest:
    return EmbedRequest(inputs=data["input"], dimensions=data.get("dimensions"), truncate=data["truncate"])


def encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


async def answer(events: JobStream) -> Embedded:
    """The job's vectors; the engine's failure is raised as its APIError."""
    async for event in events:
        if isinstance(event, Embedded):
            return event
        if isinstance(event, Failed):
            raise api_error_of(event.error)
        if isinstance(event, Finished):  # only a cancelled job finishes without vectors
            break
    raise ServerError("the engine ended the request without an answer")


async def embeddings_body(*, spec: ModelSpec, data: dict[str, Any], events: JobStream, log: CallLog) -> dict[str, Any]:
    """The response body; the row gets the counts, never the vectors."""
    try:
        result = await answer(events)
    except asyncio.CancelledError:  # the client left (JobStream cancels the job: it stops between batches)
        log.set(status_code=499, outcome=RequestLog.Outcome.CANCELLED, error="client disconnected")
        await log.write()
        raise
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    count, size = result.vectors.shape
    log.set(prompt_tokens=result.prompt_tokens, status_code=200, outcome=RequestLog.Outcome.OK, response={
        "object": "list", "model": spec.id, "usage": usage,
        "data": f"<{count} embeddings of {size} dimensions ({data['encoding_format']}), not logged>",
    })
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encoded(v, data["encoding_format"])}
                 for i, v in enumerate(result.vectors)],
        "model": spec.id,
        "usage": usage,
    }
