"""One embedding job on the resident embedding model: its inputs checked against the model's
context and vocabulary, encoded in bounded batches, answered with one Embedded event."""
from __future__ import annotations

from .backends.embedding import EmbeddingModel
from .scheduler import Job
from .types import ContextLengthExceeded, EmbedRequest, Embedded, Finished, UnsupportedContent


def checked_tokens(model: EmbeddingModel, request: EmbedRequest) -> list[list[int]]:
    """Each input's tokens; an input that does not fit (unless the request asks to truncate),
    a token id the model does not have, or a size it cannot be cut to is refused naming it."""
    if request.dimensions is not None and request.dimensions != model.dimensions \
            and request.dimensions not in model.spec.dimensions:
        shorter = ", ".join(map(str, model.spec.dimensions)) or "none"
        raise UnsupportedContent(
            f"The model `{model.spec.id}` makes {model.dimensions}-dimensional vectors and cannot be "
            f"shortened to {request.dimensions} (sizes it was trained to be cut to: {shorter}).",
            param="dimensions",
        )
    for i, item in enumerate(request.inputs):
        if not isinstance(item, str) and any(t >= model.vocab_size for t in item):
            raise UnsupportedContent(f"input[{i}] holds a token id outside the model's vocabulary "
                                     f"(0..{model.vocab_size - 1}).", param=f"input[{i}]")
    tokens = model.tokenize(request.inputs)
    for i, row in enumerate(tokens):
        if len(row) > model.context_length and not request.truncate:
            raise ContextLengthExceeded(
                f"input[{i}] is {len(row)} tokens long; this model's maximum context length is "
                f"{model.context_length} tokens. Shorten it, or send \"truncate\": true to cut it.",
                param=f"input[{i}]", context_length=model.context_length, prompt_tokens=len(row),
            )
    return [model.truncated(row) for row in tokens]


def run_embedding(model: EmbeddingModel, job: Job) -> None:
    request: EmbedRequest = job.request
    tokens = checked_tokens(model, request)
    vectors = model.embed(tokens, request.dimensions, cancelled=job.cancelled.is_set)
    count = sum(len(t) for t in tokens)
    if vectors is None:  # the client left between batches
        job.emit(Finished("cancelled", count, 0))
        return
    job.emit(Embedded(vectors, count))
