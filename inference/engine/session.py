"""The resident model and its prompt cache: what every request of that model is prepared
against and, when it finishes, stored into.

Both decoders (decode.py alone, batch.py together) prepare and store through here, so the
context check and the prefix cache work the same whichever path a request takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

from .backends import LoadedModel, Prompt
from .disk_cache import Shelf
from .lockstep import Lockstep
from .messages import prompt_chars
from .prompt_cache import PromptCache
from .types import ChatRequest, ContextLengthExceeded, UnsupportedContent


def what_of(request: ChatRequest) -> str:
    """What the prompt was given as, for an error to name: `messages`, or a completions `prompt`."""
    return "messages" if request.raw is None else "prompt"


@dataclass
class Prepared:
    """A request checked against the context and matched against the prompt cache."""

    prompt: Prompt
    key: tuple
    cache: list  # the KV cache to continue: a private copy of the cached prefix, or empty
    cached: int  # prompt tokens `cache` already holds
    max_tokens: int


@dataclass
class Session:
    model: LoadedModel
    loaded_at: float  # wall clock
    load_seconds: float
    prompt_cache: PromptCache | None  # saved to `disk` (if any) and dropped with the model
    default_max_tokens: int  # for requests that set none, capped by the room left
    footprint: int = 0  # bytes the load guard counted for it (weights + KV), or model.nbytes
    disk: Shelf | None = None  # its entries on disk, read back when a prompt would reuse them
    idle_since: float = 0.0  # monotonic
    ttl: float | None = None  # set by a request's keep_alive; None: the spec's or the default
    release: bool = False  # a request's keep_alive was 0: unload once no job of it waits
    # The group a `distributed:` model is split over: every rank's session prepares and decodes
    # each request alike, agreeing where their states may differ (lockstep.py).
    lockstep: Lockstep | None = None

    def keep_alive(self, seconds: float | None) -> None:
        """A finished request's keep_alive (Ollama's): 0 unloads the model once nothing else
        waits for it, a negative value keeps it for ever, else it is its TTL from now on."""
        if seconds is None:
            return
        self.release = seconds == 0
        if seconds:
            self.ttl = max(0.0, seconds)  # a TTL of 0 is never

    @property
    def bytes(self) -> int:
        """What it counts for against the memory budget."""
        return max(self.footprint, self.model.nbytes)

    def prepare(self, request: ChatRequest) -> Prepared:
        """Render the prompt, check it fits, and find its cached prefix (or a fresh cache)."""
        model = self.model
        self.refuse_what_cannot_fit(request)
        prompt = self.render(request)
        n_prompt = len(prompt.tokens)
        room = model.context_length - n_prompt
        max_tokens = request.params.max_tokens or min(self.default_max_tokens, room)
        if request.params.fit_max_tokens and room > 0:
            max_tokens = min(max_tokens, room)
        if max_tokens > room or room <= 0:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {model.context_length} tokens. However, "
                f"you requested {n_prompt + max_tokens} tokens ({n_prompt} in the messages, "
                f"{max_tokens} in the completion). Please reduce the length of the {what_of(request)} or "
                "completion.",
                context_length=model.context_length, prompt_tokens=n_prompt, max_tokens=max_tokens,
                param=what_of(request),
            )
        store = self.prompt_cache
        key = (model.spec.id, *prompt.cache_key)
        cache, rest = store.fetch(key, prompt.tokens) if store is not None else (None, prompt.tokens)
        cached = n_prompt - len(rest)
        if store is not None and self.disk is not None:
            found = self.disk.fetch(key, prompt.tokens, better_than=cached)
            if found is not None:  # a longer prefix saved before an unload or a restart
                store.store(key, *found)
                cache, rest = store.fetch(key, prompt.tokens)
                cached = n_prompt - len(rest)
        if cache is None or not model.accepts_cached_prefix(prompt, cached):
            cache, cached = None, 0
        if self.lockstep is not None:
            cache, cached = self._common_prefix(cache, cached)
        if cache is None:
            cache, cached = model.new_cache(n_prompt + max_tokens, prompt), 0
        return Prepared(prompt, key, cache, cached, max_tokens)

    def _common_prefix(self, cache: list | None, cached: int) -> tuple[list | None, int]:
        """The cached prefix every rank starts from: each rank's cache evicts by its own
        shard's bytes, so one may hold a longer prefix than another; it trims back to the
        shortest (a copy: the stored entry keeps its tokens)."""
        agreed = self.lockstep.common_prefix(cached, cache is None or can_trim_prompt_cache(cache))
        if agreed == 0:
            return None, 0
        if agreed < cached:
            trim_prompt_cache(cache, cached - agreed)
        return cache, agreed

    def render(self, request: ChatRequest) -> Prompt:
        """The prompt's tokens: the messages through the chat template, or a completions
        prompt as it is."""
        if request.raw is not None:
            prompt = self.model.render_raw(request.raw)
            if not prompt.tokens:  # "" to a tokenizer that adds no BOS
                raise UnsupportedContent("The prompt is empty: there is nothing to continue.", param="prompt")
            return prompt
        return self.model.render_prompt(request.messages, request.tools, request.images, request.template_kwargs)

    def refuse_what_cannot_fit(self, request: ChatRequest) -> None:
        """Refuse, before tokenizing it (seconds of CPU for megabytes), a prompt whose
        characters alone need more tokens than the context holds. Held to half that bound: a
        normalizer may fold a few characters into one, and a refusal must be certain."""
        model = self.model
        raw = request.raw
        chars = prompt_chars(request.messages) if raw is None else (
            (0 if isinstance(raw.prompt, list) else len(raw.prompt)) + len(raw.suffix or ""))
        fewest = chars // (2 * model.max_token_chars)
        if fewest > model.context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {model.context_length} tokens. However, "
                f"your {what_of(request)} hold {chars} characters, at least {fewest} tokens. Please reduce "
                f"the length of the {what_of(request)}.",
                context_length=model.context_length, prompt_tokens=fewest, max_tokens=0, param=what_of(request),
            )

    def store(self, prepared: Prepared, generated: list[int], cache: list[Any] | None) -> None:
        """Keep a finished request's KV cache for the next turn's prefix."""
        if self.prompt_cache is not None and cache is not None:
            self.prompt_cache.store(prepared.key, prepared.prompt.tokens + generated, cache)

    def prompt_cache_writer(self) -> Callable[[], int] | None:
        """What writes the in-memory entries to disk, holding them (and not the model) until
        it runs; None when there is nothing to write."""
        if self.disk is None or self.prompt_cache is None or not len(self.prompt_cache):
            return None
        shelf, entries = self.disk, self.prompt_cache.entries()
        return lambda: shelf.save(entries)
