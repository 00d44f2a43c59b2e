"""One tool-format registry: a format module owns its renderer, its parser and its call
grammar, models.yaml names are checked against the registry by a system check, and a new
format needs only its class and its line in TOOL_FORMATS."""
import json
import subprocess
import sys
from pathlib import Path

import llguidance
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import SystemCheckError

import inference.tools as tools
from inference.checks import check_plugins_registered
from inference.constraints import build_grammar
from inference.tools import TOOL_FORMATS, ToolFormat, get_tool_format

REPO = Path(__file__).resolve().parent.parent
TOOL = {"type": "function", "function": {"name": "f", "parameters": {
    "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}


class Bracketed(ToolFormat):
    """A toy format: `[[f {"x": 1}]]`."""

    name = "bracketed"
    opener, closer = "[[", "]]"

    def render_messages(self, messages, tools, template_renders_tools=False):
        return messages

    def parse_block(self, body, tools):
        name, _, arguments = body.partition(" ")
        return [(name, json.loads(arguments))]

    def call_grammar(self, tools, parallel):
        return 'calls: "[[" NAME " {}]]"\nNAME: /[a-z]+/'


@pytest.mark.parametrize("name", sorted(TOOL_FORMATS))
def test_each_format_owns_its_grammar(name):
    grammar = get_tool_format(name).call_grammar([(0, TOOL)], parallel=False)
    if name == "none":
        assert grammar is None
        return
    lark = "start: calls\n" + grammar
    assert llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_lark(lark)) == ""


def test_a_new_format_is_its_class_and_one_registry_line(monkeypatch, tmp_path, settings):
    monkeypatch.setitem(TOOL_FORMATS, Bracketed.name, Bracketed)
    fmt = tools.get_tool_format("bracketed")
    assert fmt.parse('hi [[f {"x": 1}]]', [TOOL]).calls[0].arguments == '{"x": 1}'
    grammar = build_grammar(response_format=None, tools=[TOOL], tool_choice="required",
                            parallel_tool_calls=True, tool_format=fmt)
    assert grammar is not None and "[[" in grammar
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{"id": "b", "source": {"path": "/x"}, "tool_format": "bracketed"}]}))
    settings.MLX_SERVER_MODELS = models
    assert check_plugins_registered() == []


def test_check_reports_an_unregistered_tool_format(tmp_path, settings):
    bad = tmp_path / "models.yaml"
    bad.write_text(yaml.safe_dump({"models": [{"id": "m1", "source": {"path": "/x"}, "tool_format": "xml"}]}))
    settings.MLX_SERVER_MODELS = bad
    (error,) = check_plugins_registered()
    assert error.id == "inference.E001"
    assert "'m1'" in error.msg and "'tool_format'" in error.msg and "'xml'" in error.msg
    with pytest.raises(SystemCheckError, match="'xml'"):
        call_command("check")


@pytest.mark.django_db
def test_a_model_with_an_unregistered_format_is_unavailable_not_a_crash(client, tmp_path, settings):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{"id": "m1", "source": {"path": str(folder)}, "tool_format": "xml"}]}))
    settings.MLX_SERVER_MODELS = models
    response = client.post("/v1/chat/completions", content_type="application/json",
                           data=json.dumps({"model": "m1", "messages": [{"role": "user", "content": "hi"}]}))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_available"
    assert "'xml'" in response.json()["error"]["message"]


def test_repo_models_yaml_passes_the_plugin_check(settings):
    settings.MLX_SERVER_MODELS = REPO / "models.yaml"
    assert check_plugins_registered() == []


@pytest.mark.parametrize("first", ["inference.tools", "inference.constraints"])
def test_tools_and_constraints_import_in_either_order(first):
    code = f"import {first}, inference.tools, inference.constraints; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("name", sorted(TOOL_FORMATS))
def test_developer_is_system_once_normalized_for_every_format(name):
    """developer -> system happens once, in engine/messages.py, before any format renders."""
    from inference.engine.messages import to_template_messages

    messages = to_template_messages([{"role": "developer", "content": "Be brief."},
                                     {"role": "user", "content": "Hi"}])
    rendered = get_tool_format(name).render_messages(messages, None)
    assert rendered[0] == {"role": "system", "content": "Be brief."}
    assert all(m["role"] != "developer" for m in rendered)
