"""Bodies past MLX_SERVER_MAX_BODY_BYTES are counted at Daphne's door, not kept (the live 413 is
in tests/test_e2e_ops.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.web.test.requesthelper import DummyChannel

from inference.body_limit import BoundedRequest


@pytest.fixture
def request_(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    channel = DummyChannel()
    channel.factory = SimpleNamespace(server=SimpleNamespace(protocol_connected=lambda request: None))
    return BoundedRequest(channel)


def test_a_declared_length_past_the_bound_keeps_nothing(request_):
    request_.gotLength(10_000_000)
    for _ in range(100):
        request_.handleContentChunk(b"x" * 100_000)
    assert request_.over and request_.received == 10_000_000
    assert request_.content.tell() == 0


def test_a_chunked_body_is_dropped_once_it_grows_past_the_bound(request_):
    request_.gotLength(None)
    request_.handleContentChunk(b"x" * 600)
    assert not request_.over and request_.content.tell() == 600
    request_.handleContentChunk(b"x" * 600)
    request_.handleContentChunk(b"x" * 600)
    assert request_.over and request_.received == 1800 and request_.content.tell() == 0


def test_a_body_within_the_bound_is_kept_whole(request_):
    request_.gotLength(1000)
    request_.handleContentChunk(b"y" * 1000)
    assert not request_.over
    request_.content.seek(0)
    assert request_.content.read() == b"y" * 1000
