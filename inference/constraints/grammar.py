"""What a request forces, as one llguidance grammar: the answer's JSON schema, a tool call
in the model's own format, or either of the two.

    response_format json_object / json_schema   -> start: answer
    tool_choice "required" / a named function   -> start: calls   (the call is the answer)
    tools offered (auto) and a response_format  -> start: answer | calls

A thinking model (models.yaml `reasoning`) may think first, freely: `start: thinking? (...)`,
so what is constrained is the answer after the thinking block.

The grammar is plain text, independent of any tokenizer; the backend that runs the model
turns it into a token mask (inference/constraints/processor.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import llguidance

from ..tools.base import function_of
from .schemas import ConstraintError, check_schema, grammar_error, json_rule

if TYPE_CHECKING:
    from ..reasoning import ReasoningFormat
    from ..tools.base import ToolFormat

ANY_OBJECT = {"type": "object"}


def answer_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema an answer must follow, or None for free text."""
    kind = (response_format or {}).get("type", "text")
    if kind == "json_object":
        return ANY_OBJECT
    if kind == "json_schema":
        return response_format["json_schema"].get("schema") or ANY_OBJECT
    return None


def forced_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> list[tuple[int, dict[str, Any]]] | None:
    """(index, tool) pairs one of which must be called, or None when no call is forced."""
    if not tools:
        return None
    if tool_choice == "required":
        return list(enumerate(tools))
    if isinstance(tool_choice, dict):
        name = function_of(tool_choice)["name"]
        return [(i, t) for i, t in enumerate(tools) if function_of(t).get("name") == name]
    return None


def build_grammar(
    *, response_format: dict[str, Any] | None, tools: list[dict[str, Any]] | None, tool_choice: Any,
    parallel_tool_calls: bool, tool_format: ToolFormat, reasoning: ReasoningFormat | None = None,
) -> str | None:
    """The request's grammar (llguidance's serialized form), or None when nothing is forced.

    `tool_format` is the model's: a forced call is written in its syntax (its call_grammar).
    Raises ConstraintError naming the offending param when it cannot be enforced.
    """
    schema = answer_schema(response_format)
    forced = forced_tools(tools, tool_choice)
    rules: list[str] = []
    if forced is not None:
        calls = tool_format.call_grammar(forced, parallel_tool_calls)
        if calls is None:
            raise ConstraintError(
                f"this model's tool format is {tool_format.name!r}, which has no call syntax to enforce; "
                "use tool_choice auto or none.", "tool_choice",
            )
        rules = ["start: calls", calls]
    elif schema is not None:
        check_schema(schema, "response_format.json_schema.schema")
        rules = [f"answer: {json_rule(schema)}"]
        calls = tool_format.call_grammar(list(enumerate(tools)), parallel_tool_calls) if tools else None
        if calls is not None:  # auto: a call or the structured answer
            rules += ["start: answer | calls", calls]
        else:
            rules.insert(0, "start: answer")
    if not rules:
        return None
    if reasoning is not None:
        at = next(i for i, rule in enumerate(rules) if rule.startswith("start: "))
        rules[at] = f"start: thinking? ({rules[at].removeprefix('start: ')})"
        rules.append(reasoning.grammar())
    grammar = llguidance.LLMatcher.grammar_from_lark("\n".join(rules))
    error = grammar_error(grammar)
    if error:  # each schema compiled on its own; a combination that fails is still named
        raise ConstraintError(f"the tool call grammar cannot be built: {error.strip().splitlines()[0]}",
                              "tools")
    return grammar
