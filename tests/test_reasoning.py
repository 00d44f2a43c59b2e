"""Reasoning models: the thinking is split off the output before the tool parser, whatever the
chunking, and reaches the client as reasoning_content (and `reasoning`), never as content.

The splitter on its own, then the chat API on a scripted backend (exact text), then the grammar
that lets the thinking come first (SmolLM2's real tokenizer, so `model`)."""
import json

import pytest

from inference.reasoning import REASONING_FORMATS, ReasoningDelta, get_reasoning_format
from inference.tools import get_tool_format
from registry import specs
from registry.specs import SpecError, parse_spec
from tests.helpers import assert_openai_error, post, sse_frames
from tests.scripted import ScriptedWorld

THINK = get_reasoning_format("think_tags")
OUTPUT = "<think>\nThe user greets me.\nI greet back.\n</think>\n\nHello there!"


def split(text: str, opened: bool = False, size: int | None = None) -> tuple[str, str, list]:
    """(reasoning, answer, events) of `text` fed in pieces of `size` characters (all at once: None)."""
    splitter = THINK.splitter(opened)
    size = size or max(len(text), 1)
    out = [piece for i in range(0, len(text), size) for piece in splitter.feed(text[i:i + size])]
    out += splitter.finish()
    reasoning = "".join(p.text for p in out if isinstance(p, ReasoningDelta))
    assert reasoning == splitter.reasoning
    return reasoning, "".join(p for p in out if isinstance(p, str)), out


@pytest.mark.parametrize("size", [None, 1, 2, 3, 5, 8])
def test_thinking_and_answer_split_alike_whatever_the_chunks(size):
    assert split(OUTPUT, size=size)[:2] == ("The user greets me.\nI greet back.", "Hello there!")


@pytest.mark.parametrize("size", [None, 1, 4])
def test_a_prompt_that_opened_the_block_leaves_only_the_close_tag_to_come(size):
    text = "\nLet me think.</think>\n\n{\"a\": 1}"
    assert split(text, opened=True, size=size)[:2] == ("Let me think.", '{"a": 1}')


@pytest.mark.parametrize("text", ["Hello!", "  Hi <think>not thinking</think>", "<thin", "<b>bold</b>"])
def test_output_that_does_not_start_with_the_block_is_all_answer(text):
    for size in (None, 1):
        assert split(text, size=size)[:2] == ("", text)


def test_output_cut_while_thinking_is_all_thinking():
    assert split("<think>\nStep one, then </thi", size=1)[:2] == ("Step one, then </thi", "")
    assert split("partly", opened=True)[:2] == ("partly", "")
    assert split("<think>\n\n")[:2] == ("", "")


def test_a_second_close_tag_is_answer_text():
    assert split("<think>a</think>b</think>", size=1)[:2] == ("a", "b</think>")


def test_the_spec_names_exactly_the_implemented_formats():
    assert set(specs.REASONING) == set(REASONING_FORMATS)
    entry = {"id": "m", "source": {"path": "/m"}}
    assert parse_spec(entry, 0).reasoning == "none"
    assert parse_spec({**entry, "reasoning": "think_tags"}, 0).reasoning == "think_tags"
    with pytest.raises(SpecError, match="reasoning"):
        parse_spec({**entry, "reasoning": "thoughts"}, 0)


def test_a_prompt_opens_the_block_when_it_ends_in_the_open_tag():
    assert THINK.opens_in("<|im_start|>assistant\n<think>\n")
    assert not THINK.opens_in("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not THINK.opens_in("<|im_start|>assistant\n")


# --- the chat API, on the scripted backend ------------------------------------------------

ASK = [{"role": "user", "content": "Hi"}]
PIECES = ["<think>", "\nThe user ", "greets me.", "\n</think>", "\n\n", "Hello", " there!"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def thinker(models_yaml, serve):
    models_yaml("thinker", reasoning="think_tags", tool_format="qwen_tool_call")
    models_yaml("plain", tool_format="qwen_tool_call")
    return serve


def whole(client, **body):
    response = post(client, {"model": "thinker", "messages": ASK, **body})
    assert response.status_code == 200, response.content
    return response.json()


def streamed(**body) -> list[dict]:
    frames = sse_frames({"model": "thinker", "messages": ASK, "stream": True, **body})
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def deltas(chunks, key):
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


@pytest.mark.django_db
def test_the_thinking_is_reasoning_content_never_content(client, thinker):
    thinker(PIECES)
    body = whole(client)
    message = body["choices"][0]["message"]
    assert message["content"] == "Hello there!"
    assert message["reasoning_content"] == message["reasoning"] == "The user greets me."
    # The tokens whose text was thinking: the open tag through the close tag.
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4
    assert body["usage"]["completion_tokens"] == len(PIECES)


@pytest.mark.django_db(transaction=True)
def test_streamed_thinking_comes_as_reasoning_deltas(thinker):
    thinker(PIECES)
    chunks = streamed(stream_options={"include_usage": True})
    assert deltas(chunks, "reasoning_content") == deltas(chunks, "reasoning") == "The user greets me."
    assert deltas(chunks, "content") == "Hello there!"
    assert all("think" not in (c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4


@pytest.mark.django_db
def test_a_call_written_while_thinking_is_not_a_call(client, thinker):
    thinker(["<think>I could write <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>",
             "</think>", "No call needed."])
    message = whole(client, tools=TOOLS)["choices"][0]["message"]
    assert "tool_calls" not in message and message["content"] == "No call needed."
    assert "<tool_call>" in message["reasoning_content"]


@pytest.mark.django_db
def test_a_call_after_thinking_is_parsed(client, thinker):
    thinker(["<think>Weather, so a call.</think>\n", "<tool_call>\n{\"name\": \"get_weather\", ",
             "\"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"])
    choice = whole(client, tools=TOOLS)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["reasoning_content"] == "Weather, so a call."
    (call,) = choice["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


@pytest.mark.django_db
def test_when_the_template_opened_the_block_the_output_starts_inside(client, thinker):
    thinker(ScriptedWorld(["Hmm, ", "a greeting.", "</think>", "\n\nHi!"], opens_reasoning=True).engine())
    message = whole(client)["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Hmm, a greeting.", "Hi!")


@pytest.mark.django_db
def test_a_model_without_reasoning_keeps_its_text_as_content(client, thinker):
    thinker(PIECES)
    response = post(client, {"model": "plain", "messages": ASK})
    message = response.json()["choices"][0]["message"]
    assert message["content"] == "".join(PIECES) and "reasoning_content" not in message
    assert response.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


@pytest.mark.django_db(transaction=True)
def test_the_log_row_of_a_stream_keeps_the_thinking_apart(thinker):
    from inference.models import RequestLog

    thinker(PIECES)
    streamed()
    logged = json.loads(RequestLog.objects.get().response_body)
    assert logged["content"] == "Hello there!" and logged["reasoning_content"] == "The user greets me."


@pytest.mark.django_db
def test_template_kwargs_and_reasoning_effort_reach_the_engine(client, thinker):
    engine = thinker(PIECES)
    whole(client, chat_template_kwargs={"enable_thinking": False}, reasoning_effort="low")
    whole(client)
    assert [r.template_kwargs for r in engine.requests] == [
        {"enable_thinking": False, "reasoning_effort": "low"}, {}]
    # and the session hands them to the model's template
    (model,) = {id(s.model): s.model for s in [engine.engine.session]}.values()
    assert model.template_kwargs_seen[-2:] == [{"enable_thinking": False, "reasoning_effort": "low"}, {}]


@pytest.mark.django_db
@pytest.mark.parametrize("body, param", [
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"reasoning_effort": 3}, "reasoning_effort"),
    ({"chat_template_kwargs": ["enable_thinking"]}, "chat_template_kwargs"),
    ({"chat_template_kwargs": {"tokenize": True}}, "chat_template_kwargs"),
])
def test_bad_reasoning_fields_are_400s(client, thinker, body, param):
    thinker(PIECES)
    assert_openai_error(post(client, {"model": "thinker", "messages": ASK, **body}), 400, param=param)


# --- the grammar: thinking first, then the constrained answer ---------------------------------


def reasoning_grammar(**kw):
    from inference.constraints import build_grammar

    return build_grammar(**{"response_format": None, "tools": None, "tool_choice": None,
                            "parallel_tool_calls": True, "tool_format": get_tool_format("qwen_tool_call"),
                            "reasoning": THINK, **kw})


def accepts(grammars, tokenizer, grammar, text, prefix=""):
    matcher = grammars.matcher(grammar)
    if prefix:
        assert matcher.consume_tokens(grammars.tokenizer.tokenize_str(prefix))
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return matcher.try_consume_tokens(tokens) == len(tokens) and matcher.is_accepting()


@pytest.mark.model
def test_the_answer_after_the_thinking_is_what_is_constrained(tokenizer):
    from inference.constraints import Grammars

    grammars = Grammars(tokenizer, [tokenizer.convert_tokens_to_ids("<|im_end|>")])
    grammar = reasoning_grammar(response_format={"type": "json_object"})
    assert accepts(grammars, tokenizer, grammar, '<think>\nJSON, {"so": "braces"}.\n</think>\n\n{"a": 1}')
    assert accepts(grammars, tokenizer, grammar, '{"a": 1}')  # thinking is optional
    assert not accepts(grammars, tokenizer, grammar, "<think>ok</think>not json")
    assert not accepts(grammars, tokenizer, grammar, "not json")
    # the prompt opened the block: the processor takes the open tag as written
    assert accepts(grammars, tokenizer, grammar, "hmm</think>{}", prefix="<think>")
    forced = reasoning_grammar(tools=TOOLS, tool_choice="required")
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert accepts(grammars, tokenizer, forced, "<think>a call</think>\n" + call)
    assert not accepts(grammars, tokenizer, forced, "<think>a call</think>\nno call")


# --- the plumbing, on tiny random weights with Qwen3's real chat templates ---------------------


@pytest.fixture
def qwen3(tiny_qwen3_thinking_dirs, models_yaml, serve):
    from pathlib import Path

    from inference.engine import Engine
    from inference.engine.backends import load_model

    for name, folder in tiny_qwen3_thinking_dirs.items():
        models_yaml(f"tiny-{name}", source={"path": str(folder)}, reasoning="think_tags",
                    tool_format="qwen_tool_call")
    return serve(Engine(materialize=lambda s: Path(s.source.location), loader=load_model, default_max_tokens=12))


def rendered(engine, model_id, **template_kwargs):
    """The prompt the resident model rendered for a request, as text."""
    model = engine.engine.session.model
    assert model.spec.id == model_id
    prompt = model.render_prompt(ASK, None, (), template_kwargs)
    return model.tokenizer.decode(prompt.tokens), prompt.opens_reasoning


@pytest.mark.model
@pytest.mark.django_db
def test_qwen3_templates_get_enable_thinking_and_say_where_the_output_starts(client, qwen3):
    body = post(client, {"model": "tiny-qwen3", "messages": ASK, "max_tokens": 4,
                         "chat_template_kwargs": {"enable_thinking": False}}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    text, opens = rendered(qwen3, "tiny-qwen3", enable_thinking=False)
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and not opens
    text, opens = rendered(qwen3, "tiny-qwen3")
    assert text.endswith("<|im_start|>assistant\n") and not opens
    post(client, {"model": "tiny-qwen3-thinking", "messages": ASK, "max_tokens": 1})
    text, opens = rendered(qwen3, "tiny-qwen3-thinking")
    assert text.endswith("<|im_start|>assistant\n<think>\n") and opens


@pytest.mark.model
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
def test_an_opened_block_never_closed_is_all_reasoning_even_constrained(client, qwen3, stream):
    """Random weights never write `</think>`: everything they make is thinking, none of it
    content, and the json_object grammar (which starts inside the opened block) lets them think."""
    body = {"model": "tiny-qwen3-thinking", "messages": ASK, "max_tokens": 12, "seed": 1,
            "response_format": {"type": "json_object"}}
    if stream:
        chunks = streamed(**body, stream_options={"include_usage": True})
        reasoning, content, usage = deltas(chunks, "reasoning_content"), deltas(chunks, "content"), chunks[-1]["usage"]
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    else:
        answer = post(client, body).json()
        message, usage = answer["choices"][0]["message"], answer["usage"]
        reasoning, content, finish = message.get("reasoning_content", ""), message["content"], \
            answer["choices"][0]["finish_reason"]
    assert finish == "length" and content == "" and reasoning.strip()
    assert usage["completion_tokens"] == 12
    assert 0 < usage["completion_tokens_details"]["reasoning_tokens"] <= 12
