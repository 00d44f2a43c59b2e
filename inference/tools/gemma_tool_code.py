"""Gemma 3 function calling, as Google's guide prompts it: the functions are described in
the first user turn (Gemma's template has no tools and folds system text into that turn),
the model calls them by writing Python in a ```tool_code``` block, and results come back in
a ```tool_output``` block in the next user turn.

The block is read with `ast` and only literal values are accepted: model output is never
evaluated.
"""
from __future__ import annotations

import ast
import json
import textwrap
from keyword import iskeyword
from typing import Any

from .base import (
    ToolFormat, ToolParseError, decode_arguments, function_of, tools_by_name,
)
from .call_grammar import ConstraintError, IndexedTools, json_rule, lark_string, tool_parameters

PREAMBLE = """\
You have access to the Python functions defined below. To call one or more of them, write \
the calls in a tool_code block, like this:
```tool_code
function_name(parameter="value", other_parameter=42)
```
Use keyword arguments with literal values only (strings, numbers, True/False, None, lists, \
dicts), one call per line. The results come back in a tool_output block; use them to call \
more functions or to answer. If no function is needed, answer directly.

```python
{definitions}
```"""

JSON_TYPES = {
    "string": "str", "integer": "int", "number": "float", "boolean": "bool",
    "array": "list", "object": "dict", "null": "None",
}
JSON_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


# --- the prompt side ----------------------------------------------------------------------


def parameter_order(function: dict[str, Any]) -> list[str]:
    """Parameters in signature order: required ones first (Python wants defaults last).

    Positional arguments in a call are mapped by this same order, so what the model saw and
    what the parser assumes agree.
    """
    params = function.get("parameters") or {}
    names = list((params.get("properties") or {}).keys())
    required = [n for n in params.get("required") or [] if n in names]
    return required + [n for n in names if n not in required]


def _py_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(JSON_TYPES.get(k, "Any") for k in kind) or "Any"
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("type"):
        return f"list[{_py_type(schema['items'])}]"
    return JSON_TYPES.get(kind, "Any")


def python_signature(function: dict[str, Any]) -> str:
    """A JSON-schema function as a Python stub with a Google-style docstring."""
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    args = []
    doc_args = []
    for name in parameter_order(function):
        schema = props.get(name) or {}
        default = "" if name in required else " = None"
        args.append(f"{name}: {_py_type(schema)}{default}")
        line = schema.get("description", "").strip()
        if schema.get("enum"):
            line += f" One of: {', '.join(map(python_literal, schema['enum']))}."
        if line.strip():  # undescribed parameters are described by their signature alone
            doc_args.append(f"      {name}: {line.strip()}")
    doc = (function.get("description") or "").strip()
    if doc_args:
        doc = f"{doc}\n\n    Args:\n" + "\n".join(doc_args) if doc else "Args:\n" + "\n".join(doc_args)
    return f'def {function["name"]}({", ".join(args)}):\n    """{doc}\n    """'


def python_literal(value: Any) -> str:
    """A JSON value as Python source (True/False/None), readable back by `literal_value`."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON escapes are valid Python escapes
    if isinstance(value, list):
        return "[" + ", ".join(map(python_literal, value)) + "]"
    if isinstance(value, dict):
        items = (f"{python_literal(str(k))}: {python_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(str(value))


def render_call(call: dict[str, Any]) -> str:
    """One OpenAI tool call as the line Gemma would have written for it."""
    function = function_of(call)
    arguments = decode_arguments(function.get("arguments"))
    if isinstance(arguments, dict):
        inner = ", ".join(f"{k}={python_literal(v)}" for k, v in arguments.items())
    else:  # not a JSON object: show it as the client sent it
        inner = str(arguments)
    return f"{function.get('name', '')}({inner})"


def _join(first: Any, second: Any) -> Any:
    """Two turns' contents as one (Gemma's template wants user/assistant to alternate)."""
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}" if first and second else first or second

    def parts(content: Any) -> list[dict[str, Any]]:
        if isinstance(content, list):
            return list(content)
        return [{"type": "text", "text": content}] if content else []

    return parts(first) + parts(second)


# --- the output side ----------------------------------------------------------------------


def literal_value(node: ast.AST) -> Any:
    """A JSON-able value from a literal expression; anything else is a parse error."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float))):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal_value(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, (str, int, float))):
                raise ToolParseError("dict keys must be literal strings or numbers")
            out[str(key.value)] = literal_value(value)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = literal_value(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Name) and node.id in JSON_NAMES:  # JSON spellings: true/false/null
        return JSON_NAMES[node.id]
    raise ToolParseError(f"not a literal value: {ast.dump(node)[:80]}")


def _function_name(node: ast.AST) -> str:
    """`get_weather` or `functions.get_weather` -> `get_weather`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
        _function_name(node.value)  # the whole chain must be plain names
        return node.attr
    raise ToolParseError("a call must name a function")


# Endings that may close a call cut mid-arguments, shortest first (GemmaToolCode.partial_call).
_CUT_ENDINGS = (")", '")', "')", "])", '"])', "})", '"})', ")]", "]))")

class GemmaToolCode(ToolFormat):
    name = "gemma_tool_code"
    opener = "```tool_code"
    closer = "```"

    def render_messages(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        template_renders_tools: bool = False,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            role, content = message["role"], message.get("content")
            if role == "assistant" and message.get("tool_calls"):
                block = "```tool_code\n" + "\n".join(map(render_call, message["tool_calls"])) + "\n```"
                content = f"{content}\n{block}" if content else block
            elif role == "tool":
                # As in Google's guide: the result alone; several results keep call order.
                role, content = "user", f"```tool_output\n{content or ''}\n```"
            elif role == "system":
                role = "system" if i == 0 else "user"  # the template folds only a leading one
            if out and out[-1]["role"] == role and role in ("user", "assistant"):
                out[-1]["content"] = _join(out[-1]["content"], content)
            else:
                out.append({"role": role, "content": content if content is not None else ""})
        if tools:
            self._describe_tools(out, tools)
        return out

    @staticmethod
    def _describe_tools(out: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
        """Put the function stubs at the start of the first user turn."""
        definitions = "\n\n".join(python_signature(function_of(t)) for t in tools)
        preamble = PREAMBLE.format(definitions=definitions)
        for message in out:
            if message["role"] == "user":
                message["content"] = _join(preamble, message["content"])
                return
        out.append({"role": "user", "content": preamble})

    def call_grammar(self, tools: IndexedTools, parallel: bool) -> str:
        """A ```tool_code block of Python calls, one per line (one call when not parallel)."""
        rules, names = [], []
        for index, tool in tools:
            rules += _call_rules(index, tool)
            names.append(f"call_{index}")
        more = ' ("\\n" call)*' if parallel else ""
        return "\n".join([
            f'calls: "```tool_code\\n" call{more} "\\n```"',
            f"call: {' | '.join(names)}",
            *rules,
        ])

    def partial_call(self, body: str, tools: list[dict[str, Any]] | None) -> tuple[str, str] | None:
        """The last call's name, and the arguments it had written whole (the call closed as
        the text stands, when some ending makes it Python)."""
        lines = textwrap.dedent(body).strip().splitlines()
        last = lines[-1] if lines else ""
        name = last.split("(", 1)[0].strip()
        if "(" not in last or not name.isidentifier() or (tools and name not in tools_by_name(tools)):
            return None
        for ending in _CUT_ENDINGS:
            try:
                calls = self.parse_block(last + ending, tools)
                return name, json.dumps(calls[-1][1], ensure_ascii=False)
            except Exception:  # not this ending
                continue
        return name, "{}"

    def parse_block(self, body: str, tools: list[dict[str, Any]] | None) -> list[tuple[str, Any]]:
        source = textwrap.dedent(body).strip()
        try:
            tree = ast.parse(source, mode="exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise ToolParseError(f"not Python: {exc}") from None
        known = tools_by_name(tools)
        calls = []
        try:
            for statement in tree.body:
                if not isinstance(statement, ast.Expr):
                    raise ToolParseError("only call expressions are allowed")
                value = statement.value
                for node in value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]:
                    calls.append(self._call(node, known))
        except RecursionError:
            raise ToolParseError("nested too deeply") from None
        return calls

    @staticmethod
    def _call(node: ast.AST, known: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        if not isinstance(node, ast.Call):
            raise ToolParseError("not a function call")
        name = _function_name(node.func)
        # `print(get_weather(...))`: models sometimes print what they call.
        if name == "print" and "print" not in known and len(node.args) == 1 and not node.keywords \
                and isinstance(node.args[0], ast.Call):
            return GemmaToolCode._call(node.args[0], known)
        arguments: dict[str, Any] = {}
        if node.args:
            if name not in known:
                raise ToolParseError(f"positional arguments to {name!r}, whose parameters are unknown")
            order = parameter_order(known[name])
            if len(node.args) > len(order):
                raise ToolParseError(f"too many positional arguments to {name!r}")
            for param, arg in zip(order, node.args):
                if isinstance(arg, ast.Starred):
                    raise ToolParseError("*args are not allowed")
                arguments[param] = literal_value(arg)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise ToolParseError("**kwargs are not allowed")
            if keyword.arg in arguments:
                raise ToolParseError(f"{keyword.arg!r} given twice")
            arguments[keyword.arg] = literal_value(keyword.value)
        return name, arguments


# --- the call grammar ---------------------------------------------------------------------


def _python_name(name: str, what: str, param: str) -> str:
    if not name.isidentifier() or iskeyword(name):
        raise ConstraintError(
            f"{what} {name!r} is not a Python identifier, so gemma_tool_code cannot write it.", param
        )
    return name


def _call_rules(index: int, tool: dict[str, Any]) -> list[str]:
    """Rules for `name(required=..., [optional=...])`: keyword arguments in the order the
    prompt's signature lists them (required first), each value a JSON literal of its schema
    (JSON literals are Python literals the parser reads: true/false/null included)."""
    param = f"tools[{index}]"
    function = function_of(tool)
    name = _python_name(function["name"], "function name", f"{param}.function.name")
    parameters = tool_parameters(tool, param)
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
        rules.append(f"{arg[prop]}: {lark_string(prop + '=')} {json_rule({**properties[prop], **shared})}")
    body = ' ", " '.join(arg[p] for p in required)
    # Optional arguments, each present or not, in order; the first one written needs no comma.
    tail = "".join(f' (", " {arg[p]})?' for p in optional)
    if not required and optional:
        heads = [f"{arg[p]}" + "".join(f' (", " {arg[q]})?' for q in optional[k + 1:])
                 for k, p in enumerate(optional)]
        body, tail = "(" + " | ".join(heads) + ")?", ""
    parts = [lark_string(name + "("), f"{body}{tail}".strip(), '")"']
    return [f"call_{index}: " + " ".join(p for p in parts if p), *rules]
