"""Derived registry fields: capabilities follow backend and tool_format, fixture follows a
fixture source; the keys are still accepted where they agree."""
from pathlib import Path

import pytest

from registry.loader import parse_registry
from registry.specs import SpecError

REPO = Path(__file__).resolve().parent.parent


def spec_of(**entry):
    return parse_registry({"models": [{"id": "m1", "source": {"path": "/x"}, **entry}]}, Path("models.yaml")).specs[0]


@pytest.mark.parametrize("entry, capabilities", [
    ({}, ("chat",)),
    ({"tool_format": "qwen_tool_call"}, ("chat", "tools")),
    ({"backend": "vision"}, ("chat", "vision")),
    ({"backend": "vision", "tool_format": "gemma_tool_code", "capabilities": ["chat", "vision"]},
     ("chat", "vision", "tools")),
])
def test_capabilities_are_derived(entry, capabilities):
    assert spec_of(**entry).capabilities == capabilities


def test_a_listed_capability_the_model_lacks_is_refused():
    with pytest.raises(SpecError, match="'tools' needs a tool_format") as info:
        spec_of(capabilities=["chat", "tools"])
    assert info.value.field == "capabilities"


def test_fixture_follows_the_source_kind_or_the_marker():
    assert spec_of(source={"fixture": "tiny-qwen3-vl"}).fixture is True
    assert spec_of(fixture=True).fixture is True and spec_of().fixture is False
    with pytest.raises(SpecError, match="always a fixture"):
        spec_of(source={"fixture": "tiny-qwen3-vl"}, fixture=False)


@pytest.mark.parametrize("key, value, words", [
    ("backend", None, "None is not one of"),
    ("description", None, "must be a string"),
    ("fixture", "yes", "true or false"),
    ("ttl", -1, ">= 0"),
    ("ttl", True, ">= 0"),
    ("aliases", ["ok", "not ok"], "'not ok' is not a valid name"),
    ("tool_format", 3, "must be a string"),
])
def test_table_driven_checks_name_the_field(key, value, words):
    with pytest.raises(SpecError, match=words) as info:
        spec_of(**{key: value})
    assert (info.value.model, info.value.field) == ("m1", key)


def test_null_means_the_default_where_it_did():
    spec = spec_of(aliases=None, capabilities=None, context_length=None, ttl=None)
    assert (spec.aliases, spec.context_length, spec.ttl) == ((), None, None)


def test_the_repo_models_yaml_keeps_its_capabilities():
    from registry.loader import load_registry

    registry = load_registry(REPO / "models.yaml")
    assert registry.resolve("gemma").capabilities == ("chat", "vision", "tools")
    assert registry.resolve("smollm2").capabilities == ("chat",)
    assert registry.resolve("tiny-qwen3-vl").fixture is True
