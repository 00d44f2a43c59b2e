"""What a format's `call_grammar` is built from: JSON Schemas as Lark rules (the constraints
package's schema checks) and each tool's checked parameters.

The rules each format returns define `calls`: one call block (or several, when parallel calls
are allowed) in exactly the syntax the format's own parser reads, with arguments that validate
against the tool's `parameters`. The parser stays the single reader of model output; the
grammar only makes sure there is something valid to read.
"""
from __future__ import annotations

import json
from typing import Any

from ..constraints.schemas import ConstraintError, check_schema, json_rule
from .base import function_of

__all__ = ["ConstraintError", "IndexedTools", "json_rule", "lark_string", "tool_parameters"]

# The tools a call may use, each with its index in the request's `tools` (errors name it).
IndexedTools = list[tuple[int, dict[str, Any]]]

EMPTY_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}


def lark_string(text: str) -> str:
    """A Lark string literal (JSON's escaping is a subset Lark reads)."""
    return json.dumps(text, ensure_ascii=False)


def tool_parameters(tool: dict[str, Any], param: str) -> dict[str, Any]:
    """The tool's parameters schema, checked; OpenAI's "no parameters" is an empty object."""
    parameters = function_of(tool).get("parameters")
    if parameters is None:
        return EMPTY_PARAMETERS
    check_schema(parameters, f"{param}.function.parameters")
    return parameters
