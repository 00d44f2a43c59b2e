"""KV prefix cache of the resident model, on mlx-lm's LRUPromptCache.

A chat client resends the whole conversation each turn; re-reading it is the main cost of
local chat. mlx-lm's trie already finds the longest cached prefix (exact, shorter, or a
longer entry trimmed back) and bounds entries by count and bytes; this adds what a server
needs around it: a key that includes image hashes, and feeding the last token again on an
exact hit (its logits were never cached).
"""
from __future__ import annotations

from typing import Any, Hashable

from mlx_lm.models.cache import LRUPromptCache, can_trim_prompt_cache, trim_prompt_cache


class PromptCache:
    def __init__(self, *, max_entries: int, max_bytes: int):
        self._lru = LRUPromptCache(max_size=max_entries, max_bytes=max_bytes)

    def fetch(self, key: Hashable, tokens: list[int]) -> tuple[list[Any] | None, list[int]]:
        """A private copy of the nearest cache and the tokens still to prefill."""
        cache, rest = self._lru.fetch_nearest_cache(key, tokens)
        if cache is None:
            return None, tokens
        if not rest:
            if not can_trim_prompt_cache(cache):
                return None, tokens
            trim_prompt_cache(cache, 1)
            rest = tokens[-1:]
        return cache, list(rest)

    def store(self, key: Hashable, tokens: list[int], cache: list[Any]) -> None:
        """Keep `cache`, which holds the KV state of the first `offset` of `tokens`."""
        offset = getattr(cache[0], "offset", None) if cache else None
        if not isinstance(offset, int) or offset <= 0 or offset > len(tokens):
            return
        self._lru.insert_cache(key, tokens[:offset], cache)

    def entries(self) -> list[tuple[Hashable, list[int], list[Any]]]:
        """Every entry as (key, tokens, KV cache), oldest first, to save them (disk_cache.py).
        mlx-lm keeps no public walk of its LRU, so this reads its order and trie."""
        return [(key, list(tokens), self._lru._trie.get(key, tokens).prompt_cache)
                for lru in self._lru._lru._lrus.values() for key, tokens in lru]

    @property
    def nbytes(self) -> int:
        return self._lru.nbytes

    def __len__(self) -> int:
        return len(self._lru)
