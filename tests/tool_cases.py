"""Whole-output tool-call cases of the two formats, shared by their own tests
(test_tools_qwen.py, test_tools_gemma.py: parsed whole) and test_tools_streaming.py (replayed
split at every boundary).

Each case: (id, text, expected content, expected calls as (name, arguments), failures, tools).
"""
from __future__ import annotations

SAME = "<the text itself>"  # expected content: the whole text, verbatim

# --- Qwen <tool_call> JSON blocks -----------------------------------------------------------------

QWEN_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QWEN_TOOLS = [QWEN_WEATHER]


def block(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


QWEN_CASES = [
    ("one", block('{"name": "get_weather", "arguments": {"city": "Paris"}}'), "",
     [("get_weather", {"city": "Paris"})], 0, None),
    ("text-around", "I'll check.\n" + block('{"name": "get_weather", "arguments": {"city": "Paris"}}') + "\nWait.",
     "I'll check.\nWait.", [("get_weather", {"city": "Paris"})], 0, None),
    ("several", block('{"name": "a", "arguments": {}}') + "\n" + block('{"name": "b", "arguments": {"x": 1}}') + "\n",
     "", [("a", {}), ("b", {"x": 1})], 0, None),
    ("no-newlines", 'x<tool_call>{"name": "a", "arguments": {"k": "v"}}</tool_call>y', "xy",
     [("a", {"k": "v"})], 0, None),
    ("nested", block('{"name": "f", "arguments": {"a": {"b": [1, 2.5, {"c": null}], "d": true}, "e": "<x>"}}'), "",
     [("f", {"a": {"b": [1, 2.5, {"c": None}], "d": True}, "e": "<x>"})], 0, None),
    ("trailing-commas", block('{"name": "f", "arguments": {"a": [1, 2,], "b": "x, }",},}'), "",
     [("f", {"a": [1, 2], "b": "x, }"})], 0, None),
    ("single-quotes", block("{'name': 'f', 'arguments': {'a': \"it's\", 'b': 'x'}}"), "",
     [("f", {"a": "it's", "b": "x"})], 0, None),
    ("python-literals", block('{"name": "f", "arguments": {"a": True, "b": None, "c": False, "s": "true"}}'), "",
     [("f", {"a": True, "b": None, "c": False, "s": "true"})], 0, None),
    ("mixed-slips", block("{'name': 'f', 'arguments': {'a': true, 'b': null,},}"), "",
     [("f", {"a": True, "b": None})], 0, None),
    ("arguments-as-string", block('{"name": "f", "arguments": "{\\"a\\": 1}"}'), "", [("f", {"a": 1})], 0, None),
    ("parameters-key", block('{"name": "f", "parameters": {"a": 1}}'), "", [("f", {"a": 1})], 0, None),
    ("no-arguments", block('{"name": "now"}'), "", [("now", {})], 0, None),
    ("openai-shape", block('{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}'), "",
     [("f", {"a": 1})], 0, None),
    ("list-in-one-block", block('[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]'), "",
     [("a", {}), ("b", {})], 0, None),
    ("fenced-json", block('```json\n{"name": "a", "arguments": {}}\n```'), "", [("a", {})], 0, None),
    ("no-call", "Just text with < and > and <tool and tool_call>.\n", SAME, [], 0, None),
    ("known-tool", block('{"name": "get_weather", "arguments": {"city": "Oslo"}}'), "",
     [("get_weather", {"city": "Oslo"})], 0, QWEN_TOOLS),
    # failures: the block stays in content verbatim
    ("garbage", "Hmm " + block("{not json at all"), SAME, [], 1, None),
    ("no-name", block('{"arguments": {"a": 1}}'), SAME, [], 1, None),
    ("arguments-not-object", block('{"name": "f", "arguments": [1, 2]}'), SAME, [], 1, None),
    ("code-not-data", block('{"name": __import__("os").system("ls")}'), SAME, [], 1, None),
    ("unknown-tool", block('{"name": "rm_rf", "arguments": {}}'), SAME, [], 1, QWEN_TOOLS),
    ("empty", "<tool_call></tool_call>", SAME, [], 1, None),
    ("unclosed", 'Sure <tool_call>\n{"name": "f", "arguments": {}}', SAME, [], 1, None),
    ("good-bad-good", block('{"name": "a", "arguments": {}}') + "\n" + block("oops") + "\n" + block('{"name": "b"}'),
     block("oops"), [("a", {}), ("b", {})], 1, None),
]


# --- Gemma 3 ```tool_code``` blocks ---------------------------------------------------------------

GEMMA_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["c", "f"], "description": "Temperature unit."},
                "city": {"type": "string", "description": "City name."},
            },
            "required": ["city"],
        },
    },
}
GEMMA_SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "filters": {"type": "object"},
                           "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
GEMMA_TOOLS = [GEMMA_WEATHER, GEMMA_SEARCH]

GEMMA_CASES = [
    ("one", '```tool_code\nget_weather(city="Paris")\n```', "", [("get_weather", {"city": "Paris"})], 0, None),
    ("text-around", 'Let me check.\n\n```tool_code\nget_weather(city="Paris", unit="c")\n```\nOne moment.',
     "Let me check.\n\nOne moment.", [("get_weather", {"city": "Paris", "unit": "c"})], 0, None),
    ("several-lines", "```tool_code\nget_weather(city='Paris')\nget_weather(city='Rome')\n```\n",
     "", [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})], 0, None),
    ("list-of-calls", '```tool_code\n[get_weather(city="Oslo"), search(query="fjords", limit=3)]\n```',
     "", [("get_weather", {"city": "Oslo"}), ("search", {"query": "fjords", "limit": 3})], 0, None),
    ("two-blocks", 'A\n```tool_code\nsearch(query="a")\n```\nB\n```tool_code\nsearch(query="b")\n```',
     "A\nB", [("search", {"query": "a"}), ("search", {"query": "b"})], 0, None),
    ("nested", '```tool_code\nsearch(query="x", filters={"lang": ["en", "fr"], "safe": True, '
               '"since": None, "score": -1.5, "deep": {"a": (1, 2)}}, limit=+10)\n```',
     "", [("search", {"query": "x", "filters": {"lang": ["en", "fr"], "safe": True, "since": None,
                                                "score": -1.5, "deep": {"a": [1, 2]}}, "limit": 10})], 0, None),
    ("json-literals", '```tool_code\nsearch(query="x", filters={"safe": true, "since": null})\n```',
     "", [("search", {"query": "x", "filters": {"safe": True, "since": None}})], 0, None),
    ("dotted", '```tool_code\nfunctions.get_weather(city="Lima")\n```', "",
     [("get_weather", {"city": "Lima"})], 0, None),
    ("print-wrapped", '```tool_code\nprint(get_weather(city="Lima"))\n```', "",
     [("get_weather", {"city": "Lima"})], 0, None),
    ("positional-known", '```tool_code\nget_weather("Paris", "f")\n```', "",
     [("get_weather", {"city": "Paris", "unit": "f"})], 0, GEMMA_TOOLS),
    ("unicode-escapes", '```tool_code\nsearch(query="caf\\u00e9 \\"quoted\\"\\n")\n```', "",
     [("search", {"query": 'café "quoted"\n'})], 0, None),
    ("no-call", "Paris is sunny. Here is code:\n```python\nprint(1)\n```\n", SAME, [], 0, None),
    ("backticks-then-call", "Use ``` for code.\n```tool_code\nsearch(query='q')\n```",
     "Use ``` for code.", [("search", {"query": "q"})], 0, None),
    # failures: the block stays in content verbatim
    ("positional-unknown", '```tool_code\nget_weather("Paris")\n```', SAME, [], 1, None),
    ("not-literal", "Sure:\n```tool_code\nget_weather(city=input())\n```", SAME, [], 1, None),
    ("statement", "```tool_code\nimport os\n```", SAME, [], 1, None),
    ("syntax-error", "```tool_code\nget_weather(city='Paris'\n```", SAME, [], 1, None),
    ("unknown-tool", '```tool_code\nos.system(cmd="ls")\n```', SAME, [], 1, GEMMA_TOOLS),
    ("kwargs-splat", "```tool_code\nsearch(**{'query': 'x'})\n```", SAME, [], 1, None),
    ("unclosed", 'Checking\n```tool_code\nget_weather(city="Paris")\n', SAME, [], 1, None),
    ("bad-then-good", "```tool_code\nx = 1\n```\n```tool_code\nsearch(query='ok')\n```",
     "```tool_code\nx = 1\n```", [("search", {"query": "ok"})], 1, None),
]
