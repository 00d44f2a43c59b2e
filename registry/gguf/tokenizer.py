"""Rebuild a Hugging Face fast tokenizer from the vocabulary a GGUF carries in its metadata.

transformers already knows how to turn llama.cpp's tokenizer metadata into a `tokenizers` backend
(`convert_gguf_tokenizer`); we feed it from our own reader because its file reader needs torch.
What we add: the pre-tokenizers transformers does not map yet, llama.cpp's BOS/EOS behaviour, and the
chat template, so that encoding and prompts match what llama.cpp does with the same file.
"""

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

from .chat_templates import fallback_template
from .errors import GGUFImportError
from .reader import GGUFFile

# llama.cpp splits every digit off before applying the GPT-2 pattern for these `tokenizer.ggml.pre`
# values (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SMOLLM and friends); transformers leaves digits joined.
_DIGIT_SPLIT_PRE_TYPES = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"}

# llama.cpp ends generation on any of these, not only on EOS (Llama 3's <|eot_id|>, for one).
_END_OF_GENERATION_KEYS = ("eos_token_id", "eot_token_id", "eom_token_id")
# ... and on control tokens spelled like these (llama-vocab.cpp), which files rarely flag by id: Gemma's
# `<end_of_turn>` ends a chat turn although the file's EOS is `<eos>`.
_END_OF_TURN_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>"}
_CONTROL = 3


def write_tokenizer(gguf: GGUFFile, out_dir: Path, model_max_length: int) -> None:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json."""
    fields = {name: gguf.get(f"tokenizer.{key}") for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()}
    fields = {name: value for name, value in fields.items() if value is not None}
    if "tokens" not in fields:
        raise GGUFImportError(f"{gguf.path.name} carries no tokenizer (tokenizer.ggml.tokens is missing)")
    try:
        backend, _ = convert_gguf_tokenizer(gguf.architecture, fields)
    except (ValueError, KeyError) as error:
        raise GGUFImportError(f"Cannot build a tokenizer from {gguf.path.name}: {error}") from error
    _split_digits_like_llama_cpp(backend, fields.get("pre_tokenizer_type"))

    tokens = fields["tokens"]
    special = {
        f"{role}_token": tokens[token_id]
        for role in ("bos", "eos", "unk", "pad")
        if (token_id := fields.get(f"{role}_token_id")) is not None and 0 <= token_id < len(tokens)
    }
    # llama.cpp's defaults when the file does not say: BOS for sentencepiece vocabularies only.
    add_special = {
        "add_bos_token": bool(gguf.get("tokenizer.ggml.add_bos_token", fields.get("tokenizer_type") == "llama")),
        "add_eos_token": bool(gguf.get("tokenizer.ggml.add_eos_token", False)),
    }
    chat_template, template_name = gguf.get("tokenizer.chat_template"), None
    if chat_template is None and (fallback := fallback_template(gguf.architecture)) is not None:
        template_name, chat_template = fallback
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        chat_template=chat_template,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        **add_special,
        **special,
    )
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)
    _write_compat_files(out_dir, add_special, special, template_name)
    _write_generation_config(gguf, out_dir, fields)


def _split_digits_like_llama_cpp(backend: Tokenizer, pre_type: str | None) -> None:
    if pre_type in _DIGIT_SPLIT_PRE_TYPES:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )


def _write_compat_files(
    out_dir: Path, add_special: dict[str, bool], special: dict[str, str], template_name: str | None
) -> None:
    """Spell out what transformers 5 leaves implicit, for transformers 4 and other readers of these files.

    v5 drops add_bos/eos_token (tokenizer.json's post-processor already applies them), names its own
    `TokenizersBackend` class (unknown to v4, whose equivalent is the v5 alias `PreTrainedTokenizerFast`)
    and no longer writes special_tokens_map.json. A chat template the GGUF did not carry is named as the
    project's (`chat_template_name`).
    """
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(add_special, tokenizer_class="PreTrainedTokenizerFast")
    if template_name is not None:
        config["chat_template_name"] = f"mlx-server standard {template_name} template (the GGUF has none)"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2, ensure_ascii=False) + "\n")


def _write_generation_config(gguf: GGUFFile, out_dir: Path, fields: dict) -> None:
    end_ids: list[int] = []
    for key in _END_OF_GENERATION_KEYS:
        token_id = gguf.get(f"tokenizer.ggml.{key}")
        if token_id is not None and int(token_id) not in end_ids:
            end_ids.append(int(token_id))
    types = fields.get("token_type") or []
    for token_id, token in enumerate(fields["tokens"]):
        if token in _END_OF_TURN_TEXTS and token_id < len(types) and types[token_id] == _CONTROL:
            if token_id not in end_ids:
                end_ids.append(token_id)
    config = {}
    if end_ids:
        config["eos_token_id"] = end_ids[0] if len(end_ids) == 1 else end_ids
    bos = gguf.get("tokenizer.ggml.bos_token_id")
    if bos is not None:
        config["bos_token_id"] = int(bos)
    (out_dir / "generation_config.json").write_text(json.dumps(config, indent=2) + "\n")
