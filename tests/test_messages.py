"""inference/engine/messages.py: OpenAI chat messages -> what chat templates expect. `developer`
is `system`, content is one string (text parts joined) for text-only models, and an image part
is an error naming the part; the vision form keeps parts in order, one image marker per image
part (the decoded images travel beside the messages, in image_parts order)."""
from __future__ import annotations

import pytest

from inference.engine.messages import text_of, to_template_messages, to_vision_messages
from inference.engine.types import UnsupportedContent
from inference.images import image_parts

CALL = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


def image(url: str = "data:image/png;base64,AAAA") -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("content,text", [
    (None, ""),
    ("", ""),
    ("plain", "plain"),
    ([], ""),
    ([{"type": "text", "text": "one"}], "one"),
    ([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}], "one\ntwo"),
])
def test_text_of(content, text):
    assert text_of(content, where="messages[0]") == text


def test_text_of_refuses_an_image_naming_the_part():
    with pytest.raises(UnsupportedContent) as raised:
        text_of([{"type": "text", "text": "look"}, image()], where="messages[3]")
    assert raised.value.code == "unsupported_content"
    assert raised.value.details == {"param": "messages[3].content[1]"}
    assert "messages[3].content[1]" in str(raised.value) and "'image_url'" in str(raised.value)
    assert "text-only" in str(raised.value)


def test_developer_becomes_system_and_the_other_roles_stay():
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "system", "content": "S"},
                {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]
    assert to_template_messages(messages) == [
        {"role": "system", "content": "Be brief."}, {"role": "system", "content": "S"},
        {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]


def test_tool_fields_are_kept_and_others_dropped():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "ann"},
        {"role": "assistant", "content": None, "tool_calls": CALL, "refusal": None, "name": None},
        {"role": "tool", "content": "18 C", "tool_call_id": "call_1"},
    ]
    assert to_template_messages(messages) == [
        {"role": "user", "content": "a\nb", "name": "ann"},
        {"role": "assistant", "content": "", "tool_calls": CALL},
        {"role": "tool", "content": "18 C", "tool_call_id": "call_1"},
    ]


def test_the_client_messages_are_left_as_they_were():
    messages = [{"role": "developer", "content": [{"type": "text", "text": "x"}]}]
    to_template_messages(messages)
    assert messages == [{"role": "developer", "content": [{"type": "text", "text": "x"}]}]


def test_an_image_for_a_text_only_model_names_its_message():
    with pytest.raises(UnsupportedContent) as raised:
        to_template_messages([{"role": "user", "content": "hi"}, {"role": "user", "content": [image()]}])
    assert raised.value.details["param"] == "messages[1].content[0]"


def test_vision_messages_keep_parts_in_order_with_a_marker_per_image():
    messages = [
        {"role": "developer", "content": "Describe."},
        {"role": "user", "content": [{"type": "text", "text": "first"}, image("a"), image("b")]},
        {"role": "assistant", "content": "Two squares."},
        {"role": "user", "content": [image("c"), {"type": "text", "text": "and this?"}]},
    ]
    resolved = to_vision_messages(messages)
    assert resolved == [
        {"role": "system", "content": "Describe."},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "image"}, {"type": "image"}]},
        {"role": "assistant", "content": "Two squares."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and this?"}]},
    ]
    # ChatRequest.images come in this order (the API loads them through image_parts).
    assert [(part["image_url"]["url"], where) for where, part in image_parts(messages)] == [
        ("a", "messages[1].content[1]"), ("b", "messages[1].content[2]"), ("c", "messages[3].content[0]")]


def test_vision_turns_without_images_are_plain_strings():
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert to_vision_messages(messages) == [{"role": "user", "content": "a\nb"}]
    assert list(image_parts(messages)) == []
