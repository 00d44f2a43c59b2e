"""Grammar rules for a tool call written in a model's own tool format.

Each format gets one function that returns Lark rules defining `calls`: one call block (or
several, when parallel calls are allowed) in exactly the syntax inference/tools/ parses,
with arguments that validate against the tool's `parameters`. The parsers stay the single
reader of model output; these rules only make sure there is something valid to read.
"""
from __future__ import annotations

import json
import keyword
from typing import Any, Callable

from ..tools.base import function_of
from .schemas import ConstraintError, check_schema, json_rule

EMPTY_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}


def _lark_string(text: str) -> str:
    """A Lark string literal (JSON's escaping is a subset Lark reads)."""
    return json.dumps(text, ensure_ascii=False)


def _parameters(tool: dict[str, Any], param: str) -> dict[str, Any]:
    """The tool's parameters schema, checked; OpenAI's "no parameters" is an empty object."""
    parameters = function_of(tool).get("parameters")
    if parameters is None:
        return EMPTY_PARAMETERS
    check_schema(parameters, f"{param}.function.parameters")
    return parameters


def qwen_calls(tools: list[tuple[int, dict[str, Any]]], parallel: bool) -> str:
    """`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, one JSON object per
    block, its name fixed to an offered tool and its arguments held to that tool's schema."""
    rules, names = [], []
    for index, tool in tools:
        name = function_of(tool)["name"]
        call = {
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": _parameters(tool, f"tools[{index}]")},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        rules.append(f"call_{index}: {json_rule(call)}")
        names.append(f"call_{index}")
    more = ' ("\\n" call_block)*' if parallel else ""
    return "\n".join([
        f"calls: call_block{more}",
        'call_block: "<tool_call>\\n" call "\\n</tool_call>"',
        f"call: {' | '.join(names)}",
        *rules,
    ])


def _python_name(name: str, what: str, param: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConstraintError(
            f"{what} {name!r} is not a Python identifier, so gemma_tool_code cannot write it.", param
        )
    return name


def _gemma_call(index: int, tool: dict[str, Any]) -> list[str]:
    """Rules for `name(required=..., [optional=...])`: keyword arguments in the order the
    prompt's signature lists them (required first), each value a JSON literal of its schema
    (JSON literals are Python literals the gemma parser reads: true/false/null included)."""
    param = f"tools[{index}]"
    function = function_of(tool)
    name = _python_name(function["name"], "function name", f"{param}.function.name")
    parameters = _parameters(tool, param)
    properties = parameters.get("properties") or {}
    required = [p for p in parameters.get("required") or [] if p in properties]
    missing = [p for p in parameters.get("required") or [] if p not in properties]
    if missing:
        raise ConstraintError(f"required parameter {missing[0]!r} is not in properties.",
                              f"{param}.function.parameters")
    optional = [p for p in properties if p not in required]
    shared = {k: parameters[k] for k in ("$defs", "definitions") if k in parameters}
    rules, arg = [], {}
    for j, prop in enumerate(required + optional):
        _python_name(prop, "parameter", f"{param}.function.parameters.properties")
        arg[prop] = f"t{index}_a{j}"
        rules.append(f"{arg[prop]}: {_lark_string(prop + '=')} {json_rule({**properties[prop], **shared})}")
    body = ' ", " '.join(arg[p] for p in required)
    # Optional arguments, each present or not, in order; the first one written needs no comma.
    tail = "".join(f' (", " {arg[p]})?' for p in optional)
    if not required and optional:
        heads = [f"{arg[p]}" + "".join(f' (", " {arg[q]})?' for q in optional[k + 1:])
                 for k, p in enumerate(optional)]
        body, tail = "(" + " | ".join(heads) + ")?", ""
    parts = [_lark_string(name + "("), f"{body}{tail}".strip(), '")"']
    return [f"call_{index}: " + " ".join(p for p in parts if p), *rules]


def gemma_calls(tools: list[tuple[int, dict[str, Any]]], parallel: bool) -> str:
    """A ```tool_code block of Python calls, one per line (one call when not parallel)."""
    rules, names = [], []
    for index, tool in tools:
        rules += _gemma_call(index, tool)
        names.append(f"call_{index}")
    more = ' ("\\n" call)*' if parallel else ""
    return "\n".join([
        f'calls: "```tool_code\\n" call{more} "\\n```"',
        f"call: {' | '.join(names)}",
        *rules,
    ])


CALL_GRAMMARS: dict[str, Callable[[list[tuple[int, dict[str, Any]]], bool], str]] = {
    "qwen_tool_call": qwen_calls,
    "gemma_tool_code": gemma_calls,
}
