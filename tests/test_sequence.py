"""Sequence (inference/engine/sequence.py) fed scripted tokens: the per-token rules both
decoders share (stop strings across token boundaries, end tokens, max_tokens, counts, rates,
cancellation, the cache stored on finish), without an engine thread."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from inference.engine import Delta, Finished, Job, Started
from inference.engine import sequence as sequence_module
from inference.engine.sequence import Sequence
from inference.engine.session import Session
from tests.scripted import FIRST_TOKEN, ScriptedModel, ask, spec

END = 7  # the scripted model's end token in these tests


class RecordingCache:
    """A prompt cache that keeps what it is asked to store."""

    def __init__(self):
        self.stored = []

    def fetch(self, key, tokens):
        return None, tokens

    def store(self, key, tokens, cache):
        self.stored.append((key, tokens, cache))


def sequence_of(pieces, clock=None, **params):
    """A started Sequence over `pieces` (token FIRST_TOKEN + i is pieces[i]) and its events."""
    model = ScriptedModel(spec("m"), pieces, end_tokens=frozenset({END}))
    session = Session(model, loaded_at=0.0, load_seconds=0.0, prompt_cache=RecordingCache(), default_max_tokens=16)
    events = []
    job = Job(spec("m"), ask("ab", **params), emit=events.append)
    prepared = session.prepare(job.request)
    seq = Sequence(job, session, prepared, model.detokenizer(), model.end_tokens)
    seq.start()
    return seq, events


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def feed(seq, count) -> list:
    return [seq.on_token(FIRST_TOKEN + i) for i in range(count)]


def test_starts_with_the_prompt_and_its_cached_tokens():
    seq, events = sequence_of(["x"])
    assert events == [Started(prompt_tokens=2, cached_tokens=0)]


def test_a_stop_string_across_token_boundaries_is_cut_and_never_sent():
    seq, events = sequence_of(["one ", "tw", "o th", "ree"], stop=("two",))
    assert feed(seq, 3) == [None, None, "stop"]
    assert text_of(events) == "one "
    seq.finish("stop", None)
    assert events[-1].finish_reason == "stop" and events[-1].completion_tokens == 3


def test_text_that_may_start_a_stop_string_waits_for_the_next_token():
    seq, events = sequence_of(["a t", "wig"], stop=("two",))
    assert seq.on_token(FIRST_TOKEN) is None
    assert text_of(events) == "a "  # "t" might begin "two"
    assert seq.on_token(FIRST_TOKEN + 1) is None
    assert text_of(events) == "a twig"


def test_max_tokens_gives_length_and_flushes_what_was_held_back():
    seq, events = sequence_of(["ab", "cd", "t"], max_tokens=3, stop=("tw",))
    assert feed(seq, 3) == [None, None, "length"]
    assert text_of(events) == "abcdt"
    assert seq.detokenizer.finalized


def test_an_end_token_stops_counts_and_adds_no_text():
    seq, events = sequence_of(["Hel", "lo"])
    assert feed(seq, 2) == [None, None]
    assert seq.on_token(END) == "stop"
    assert text_of(events) == "Hello" and seq.detokenizer.finalized
    seq.finish("stop", None)
    assert events[-1] == Finished("stop", 2, 3, cached_tokens=0, generation_tps=events[-1].generation_tps)


def test_a_stream_that_ends_by_itself_is_a_stop_with_the_held_back_text():
    seq, events = sequence_of(["no", " t"], stop=("two",))
    feed(seq, 2)
    assert text_of(events) == "no "
    assert seq.on_end() == "stop"
    assert text_of(events) == "no t"


def test_counts_rates_and_the_job_counter(monkeypatch):
    ticks = iter([0.0, 1.0, 1.5, 2.0])  # admitted, then one per token
    monkeypatch.setattr(sequence_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    seq, events = sequence_of(["a", "b", "c"])
    feed(seq, 3)
    assert seq.job.generated == 3 and seq.tokens == [FIRST_TOKEN, FIRST_TOKEN + 1, FIRST_TOKEN + 2]
    seq.finish("length", None)
    assert events[-1] == Finished("length", 2, 3, cached_tokens=0, generation_tps=2.0)  # 2 tokens in 1 s


def test_one_token_has_no_rate():
    seq, events = sequence_of(["a"])
    seq.on_token(FIRST_TOKEN)
    seq.finish("stop", None)
    assert events[-1].generation_tps == 0.0


def test_a_cancelled_job_drops_the_token_that_saw_the_cancel():
    seq, events = sequence_of(["a", "b", "c"])
    feed(seq, 1)
    seq.job.cancelled.set()
    assert seq.on_token(FIRST_TOKEN + 1) == "cancelled"
    assert seq.tokens == [FIRST_TOKEN] and seq.job.generated == 1 and text_of(events) == "a"
    seq.finish("cancelled", None)
    assert events[-1].finish_reason == "cancelled" and events[-1].completion_tokens == 1


@pytest.mark.parametrize("cache", [["kv"], None])
def test_finish_stores_the_prompt_and_generated_tokens(cache):
    seq, _ = sequence_of(["a", "b"])
    feed(seq, 2)
    seq.finish("stop", cache)
    stored = seq.session.prompt_cache.stored
    if cache is None:  # nothing to keep (e.g. a batch sequence removed before its first token)
        assert stored == []
    else:
        assert stored == [(("m",), [ord("a"), ord("b"), FIRST_TOKEN, FIRST_TOKEN + 1], cache)]


def test_the_detokenizer_is_reset_for_each_sequence():
    model = ScriptedModel(spec("m"), ["a"])
    detokenizer = model.detokenizer()
    detokenizer.add_token(FIRST_TOKEN)
    session = Session(model, 0.0, 0.0, None, 16)
    job = Job(spec("m"), ask(), emit=lambda e: None, cancelled=threading.Event())
    Sequence(job, session, session.prepare(job.request), detokenizer, model.end_tokens)
    assert detokenizer.last_segment == ""
