"""Stop strings, streaming-safe: text that might begin a stop string is held back until
it is known not to, so a stop string never reaches the client, whatever the token
boundaries."""
from __future__ import annotations


class StopFilter:
    def __init__(self, stops: tuple[str, ...] | list[str]):
        self._stops = [s for s in stops if s]
        self._buffer = ""
        self.matched: str | None = None  # the stop string that was hit (Anthropic reports it)

    def feed(self, text: str) -> tuple[str, bool]:
        """Add generated text; return (text safe to emit, whether a stop string was hit)."""
        if not self._stops:
            return text, False
        self._buffer += text
        hits = [(i, s) for s in self._stops if (i := self._buffer.find(s)) >= 0]
        if hits:
            at, self.matched = min(hits, key=lambda hit: hit[0])
            out, self._buffer = self._buffer[:at], ""
            return out, True
        keep = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._buffer)), keep, -1):
                if self._buffer.endswith(stop[:k]):
                    keep = k
                    break
        cut = len(self._buffer) - keep
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out, False

    def flush(self) -> str:
        """What is still held back once generation ends without a stop string."""
        out, self._buffer = self._buffer, ""
        return out
