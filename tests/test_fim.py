"""Fill-in-the-middle: the models.yaml `fim` key, the spellings found in a vocabulary, and the
layout the real text backend builds on a tiny random llama whose tokenizer has FIM tokens
(registry/fixtures/fim.py; SmolLM2's and Gemma 3's have none), decoded for real."""
import pytest

from inference.engine import RawPrompt, SamplingParams, UnsupportedContent
from inference.engine.fim import SPELLINGS, fim_layout, fim_tokens
from registry.specs import FimSpec, SpecError, parse_spec

QWEN = FimSpec("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")


def entry(**fields):
    return parse_spec({"id": "m", "source": {"path": "/m"}, **fields}, 0)


def test_the_fim_key_is_auto_none_or_the_three_tokens():
    assert entry().fim == "auto" and entry(fim="none").fim == "none"
    assert entry(fim={"prefix": "<a>", "suffix": "<b>", "middle": "<c>"}).fim == FimSpec("<a>", "<b>", "<c>")
    for bad in ({"prefix": "<a>"}, "psm", {"prefix": "<a>", "suffix": "<b>", "middle": ""}):
        with pytest.raises(SpecError, match="fim"):
            entry(fim=bad)


def test_auto_finds_the_families_spellings_and_none_where_there_are_none():
    for spelling in SPELLINGS:
        assert fim_tokens("auto", {"a", spelling.prefix, spelling.suffix, spelling.middle}) == spelling
    assert fim_tokens("auto", {"<fim_prefix>", "<fim_suffix>"}) is None  # all three or nothing
    assert fim_tokens("none", {QWEN.prefix, QWEN.suffix, QWEN.middle}) is None
    assert fim_tokens(QWEN, set()) == QWEN  # models.yaml's own, as written
    ids = {QWEN.prefix: 1, QWEN.suffix: 2, QWEN.middle: 3}
    assert fim_layout(QWEN, [10, 11], [20], ids.__getitem__) == [1, 10, 11, 2, 20, 3]


@pytest.fixture(scope="module")
def fim_model(tmp_path_factory, smollm2_dir):
    from inference.engine.backends.text import TextModel
    from registry.fixtures.fim import build_fim_llama

    folder = build_fim_llama(tmp_path_factory.mktemp("fim") / "tiny-fim-llama", smollm2_dir, QWEN)
    return TextModel(entry(), folder)


@pytest.mark.model
def test_a_suffix_is_laid_out_in_the_tokenizers_fim_tokens_and_decoded(fim_model):
    tokenizer = fim_model.tokenizer
    assert fim_model.fim == QWEN
    prompt = fim_model.render_raw(RawPrompt("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"))
    pre, suf, mid = (tokenizer.convert_tokens_to_ids(t) for t in (QWEN.prefix, QWEN.suffix, QWEN.middle))
    prefix = tokenizer.encode("def add(a, b):\n    ", add_special_tokens=False)
    suffix = tokenizer.encode("\n\nprint(add(1, 2))\n", add_special_tokens=False)
    assert prompt.tokens == [pre, *prefix, suf, *suffix, mid]
    assert tokenizer.decode(prompt.tokens) == "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
    assert fim_model.render_raw(RawPrompt([5, 6], "x")).tokens == [pre, 5, 6, suf, *tokenizer.encode("x"), mid]
    plain = fim_model.render_raw(RawPrompt("def add"))
    assert plain.tokens == tokenizer.encode("def add")  # no suffix: the text as is, no template
    stream = fim_model.token_stream(prompt, 0, fim_model.new_cache(64), SamplingParams(temperature=0.0), 4)
    assert len([token for token, _ in stream]) == 4


@pytest.mark.model
def test_a_model_without_fim_tokens_refuses_a_suffix(smollm2_dir):
    from inference.engine.backends.text import TextModel

    model = TextModel(entry(), smollm2_dir)
    assert model.fim is None
    with pytest.raises(UnsupportedContent, match="fill-in-the-middle") as caught:
        model.render_raw(RawPrompt("def f(", ")"))
    assert caught.value.details == {"param": "suffix"}
    with pytest.raises(UnsupportedContent) as caught:
        model.render_raw(RawPrompt([model.vocabulary_size]))
    assert caught.value.details == {"param": "prompt"}
