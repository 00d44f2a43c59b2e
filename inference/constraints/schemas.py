"""JSON Schemas as grammar rules, and the check that turns a bad schema into a message.

A schema is checked twice: against its JSON Schema meta-schema (jsonschema), so "not JSON
Schema" is caught with the offending place named, then compiled by llguidance, which
refuses keywords it cannot enforce (`not`, look-around patterns, unknown formats, ...)
instead of silently ignoring them: a schema we accept is a schema we guarantee.
"""
from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import llguidance

# One canonical layout: no free whitespace (a small model would otherwise pad forever),
# OpenAI's separators. `lenient: False` makes unsupported keywords an error, not a no-op.
JSON_OPTIONS = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": False,
}


class ConstraintError(ValueError):
    """A response_format or tool schema we cannot enforce; `param` names where it is."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def json_rule(schema: dict[str, Any]) -> str:
    """A Lark rule body that matches exactly the JSON documents valid under `schema`."""
    return "%json " + json.dumps({**schema, "x-guidance": JSON_OPTIONS}, ensure_ascii=False)


def grammar_error(grammar: str) -> str:
    """llguidance's complaint about a grammar ('' when it compiles); no tokenizer needed."""
    return llguidance.LLMatcher.validate_grammar(grammar)


def check_schema(schema: Any, param: str) -> None:
    """Raise ConstraintError unless `schema` is a JSON Schema llguidance can enforce."""
    if not isinstance(schema, dict):
        raise ConstraintError("must be a JSON Schema object.", param)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ConstraintError(
            f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}", param
        ) from None
    error = grammar_error(llguidance.LLMatcher.grammar_from_lark("start: " + json_rule(schema)))
    if error:
        raise ConstraintError(f"this schema cannot be enforced: {_short(error)}", param)


def _short(error: str) -> str:
    """llguidance's message without the grammar excerpt it quotes (the user sent JSON)."""
    marker = "failed to compile JSON schema: "
    text = error.split(marker, 1)[1] if marker in error else error
    lines = [line for line in text.splitlines() if not re.match(r"\s+\d+ \| |\s*\^+\s*$", line)]
    return " ".join(line.strip() for line in lines if line.strip())
