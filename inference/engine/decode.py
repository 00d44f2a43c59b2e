"""One request decoded alone: the backend's token stream, each token through its Sequence.

Vision models, seeded requests and batch_size 1 take this path; batch.py is the other one.
"""
from __future__ import annotations

from .scheduler import Job
from .sequence import Sequence
from .session import Session


def run_alone(session: Session, job: Job) -> None:
    """Prepare `job` against the session, decode it to its end, and store its cache."""
    model = session.model
    prepared = session.prepare(job.request)
    sequence = Sequence(job, session, prepared, model.detokenizer(), model.end_tokens)
    sequence.start()
    finish = None
    stream = model.token_stream(prepared.prompt, prepared.cached, prepared.cache, job.request.params,
                                prepared.max_tokens)
    try:
        for token, logprobs in stream:
            finish = sequence.on_token(int(token), logprobs)
            if finish:
                break
        else:
            finish = sequence.on_end()
    finally:
        stream.close()
    sequence.finish(finish, prepared.cache)
