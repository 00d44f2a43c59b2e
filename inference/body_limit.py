"""Bodies over MLX_SERVER_MAX_BODY_BYTES are counted at Daphne's door, not kept.

Twisted buffers a whole request body (into a temporary file past 100 kB) before Daphne hands
the request on, and Django's ASGI handler copies it again: a gigabyte to say 413. The bounded
request drops what lies past the bound as it arrives, and says how long the body was in its
Content-Length, so Django refuses it from that header (RequestDataTooBig, the endpoint's 413,
logged as every request is), chunked bodies included.
"""
from __future__ import annotations

import io

from daphne import server as daphne_server
from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings


class BoundedRequest(WebRequest):
    received = 0
    over = False  # past the bound: the body is counted, not kept

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (Twisted's naming)
        self.over = length is not None and length > self.limit()
        super().gotLength(0 if self.over else length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        self.received += len(data)
        if not self.over and self.received > self.limit():  # a chunked body grew past it
            self.over = True
            self.content.close()
            self.content = io.BytesIO()
        if not self.over:
            super().handleContentChunk(data)

    def process(self):
        if self.over:
            self.requestHeaders.setRawHeaders(b"content-length", [str(self.received).encode()])
            self.requestHeaders.removeHeader(b"transfer-encoding")
        return super().process()

    @staticmethod
    def limit() -> int:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):  # noqa: N802
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BoundedRequest
        return protocol


def install() -> None:
    """Daphne's server builds its factory by this name when it runs."""
    daphne_server.HTTPFactory = BoundedHTTPFactory
