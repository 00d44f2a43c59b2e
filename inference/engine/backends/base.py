"""What the engine needs from a loaded model, whichever library runs it.

A backend renders prompts and hands over its library's raw token stream, its streaming
detokenizer and its end tokens; turning tokens into text, counts and events is the engine's
(sequence.py), written once for every backend and both decoders.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Container, Iterator, Protocol, Sequence

from mlx.utils import tree_flatten
from mlx_lm.generate import BatchGenerator

from registry.model_folder import context_length
from registry.specs import ModelSpec

from ...reasoning import get_reasoning_format
from ...tools import get_tool_format
from ..fim import fim_layout, fim_tokens
from ..types import ModelLoadError, RawPrompt, SamplingParams, UnsupportedContent

if TYPE_CHECKING:
    from ...images import LoadedImage


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its tokens, what else identifies it, what else the model needs."""

    tokens: list[int]
    cache_key: tuple[str, ...] = ()  # e.g. image hashes: a different image never shares a prefix
    inputs: dict[str, Any] = field(default_factory=dict)  # backend-specific (pixel values, ...)
    # What the template already wrote of the answer: the thinking block's open tag, when it
    # ends the prompt (inference/reasoning.py); the grammar takes it as written.
    opened: str = ""

    @property
    def opens_reasoning(self) -> bool:
        return bool(self.opened)


@dataclass(frozen=True)
class Sampling:
    """One request's sampler and logits processors, in mlx-lm's terms."""

    sampler: Callable
    logits_processors: list[Callable]


class Detokenizer(Protocol):
    """mlx-lm's streaming detokenizer: `last_segment` is the text since it was last read."""

    last_segment: str

    def reset(self) -> None: ...

    def add_token(self, token: int) -> None: ...

    def finalize(self) -> None: ...


class Batching(Protocol):
    """What a model that can share decode steps with other requests offers (engine/batch.py)."""

    def batch_generator(self, size: int) -> BatchGenerator:
        """mlx-lm's BatchGenerator over this model, for up to `size` sequences at once."""

    def sampling(self, params: SamplingParams, prompt: Prompt) -> Sampling:
        """This request's sampler and logits processors (a fresh grammar state per call);
        `prompt` says whether the grammar starts inside the thinking block."""


class LoadedModel(Protocol):
    spec: ModelSpec
    context_length: int
    nbytes: int  # weight bytes held in memory
    end_tokens: Container[int]  # tokens that end a generation (not part of the text)
    batching: Batching | None  # None: each request decodes alone
    max_token_chars: int  # the most characters one token of the vocabulary spells

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict] | None,
                      images: Sequence[LoadedImage] = (), template_kwargs: dict[str, Any] | None = None) -> Prompt:
        """An OpenAI message list through the tool format and the model's chat template;
        `images` are the messages' image parts, decoded, in prompt order; `template_kwargs`
        extra template variables (enable_thinking, reasoning_effort...)."""

    def render_raw(self, raw: RawPrompt) -> Prompt:
        """A completions prompt as the tokenizer encodes it, no template; with a suffix, laid
        out in the model's fill-in-the-middle tokens (UnsupportedContent when it has none)."""

    def accepts_cached_prefix(self, prompt: Prompt, start: int) -> bool:
        """Whether a KV cache of prompt.tokens[:start] can be continued (a vision model says
        no when an image token lies past it)."""

    def new_cache(self, tokens: int, prompt: Prompt | None = None) -> list[Any]:
        """An empty KV cache for this model (its library's per-layer cache objects) for a
        request that may reach `tokens` tokens (prompt + max_tokens); `prompt` is the one it
        is for (a vision model picks the library by it)."""

    def detokenizer(self) -> Detokenizer:
        """A streaming detokenizer for one request's tokens."""

    def decode_token(self, token: int) -> str:
        """One token's text on its own (for log probabilities)."""

    def token_stream(
        self, prompt: Prompt, start: int, cache: list[Any], params: SamplingParams, max_tokens: int
    ) -> Iterator[tuple[int, Any]]:
        """Prefill prompt.tokens[start:] (`cache` holds the first `start`), then yield the
        library's (token, logprobs) pairs, at most max_tokens; `cache` is updated in place;
        the caller may stop early and must close the iterator."""


class MlxBackend:
    """What both backends set up alike around their library's `load`."""

    def __init__(self, spec: ModelSpec, path: Path, load: Callable[[str], tuple[Any, Any]], *,
                 prefill_step: int, full_kv_tokens: int):
        """`load(path)` gives (model, tokenizer or processor), kept as `model` and `loaded`."""
        self.spec = spec
        try:
            self.model, self.loaded = load(str(path))
        except Exception as exc:  # missing/corrupt files, unknown architecture
            raise ModelLoadError(f"could not load {spec.id} from {path}: {exc}") from exc
        self.context_length = context_length(spec, path)
        self.nbytes = sum(v.nbytes for _, v in tree_flatten(self.model.parameters()))
        self.prefill_step = prefill_step
        self.full_kv_tokens = full_kv_tokens
        self.tool_format = get_tool_format(spec.tool_format)
        self.reasoning = get_reasoning_format(spec.reasoning)

    def decode_token(self, token: int) -> str:
        return self.tokenizer.decode([token])

    @functools.cached_property
    def max_token_chars(self) -> int:
        """A vocabulary entry is spelled with at least as many characters as the text it
        stands for (byte-level BPE: one per byte; SentencePiece: one per character), so a prompt
        can be no shorter in tokens than its characters over this: a bound known before the
        prompt is tokenized."""
        return max(map(len, self.tokenizer.get_vocab()), default=1)

    @functools.cached_property
    def vocabulary_size(self) -> int:
        return len(self.tokenizer.get_vocab())

    @functools.cached_property
    def fim(self):
        """The model's fill-in-the-middle tokens (models.yaml's `fim`, else found in the vocabulary)."""
        return fim_tokens(self.spec.fim, self.tokenizer.get_vocab())

    def render_raw(self, raw: RawPrompt) -> Prompt:
        """The text as the tokenizer encodes it for a model to continue (its BOS included, where
        it adds one); token ids as given. With a suffix: BOS, then the FIM layout of prefix and
        suffix, each encoded without special tokens."""
        def encode(text: str, specials: bool) -> list[int]:
            return list(self.tokenizer.encode(text, add_special_tokens=specials))

        given = raw.prompt if isinstance(raw.prompt, list) else None
        vocabulary = self.vocabulary_size
        if given is not None and any(t >= vocabulary for t in given):
            raise UnsupportedContent(f"The prompt holds a token id outside the model's vocabulary "
                                     f"(0..{vocabulary - 1}).", param="prompt")
        if raw.suffix is None:
            return Prompt(given if given is not None else encode(raw.prompt, True))
        fim = self.fim
        if fim is None:
            raise UnsupportedContent(
                f"The model `{self.spec.id}` has no fill-in-the-middle tokens, so it cannot complete "
                "between a prompt and a `suffix`. Leave out `suffix`, use a code model with FIM "
                "tokens, or name them under `fim:` in models.yaml.", param="suffix")
        head = [] if given is not None else encode("", True)  # BOS, for a tokenizer that adds one
        prefix = given if given is not None else encode(raw.prompt, False)
        return Prompt(head + fim_layout(fim, prefix, encode(raw.suffix, False), self.tokenizer.convert_tokens_to_ids))

    def template_variables(self, template_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The request's template variables; a model set up to think thinks unless the request
        says otherwise (mlx-lm would pass enable_thinking=False to a vocabulary without
        single `<think>` tokens)."""
        variables = dict(template_kwargs or {})
        if self.reasoning is not None:
            variables.setdefault("enable_thinking", True)
        return variables

    def opened_by(self, prompt_text: str) -> str:
        """The thinking block's open tag when a rendered prompt leaves the model inside it."""
        opened = self.reasoning is not None and self.reasoning.opens_in(prompt_text)
        return self.reasoning.open_tag if opened else ""
