"""Standard chat templates for GGUFs that carry none (base models such as Gemma 3 270M).

llama.cpp falls back to built-in templates in that case; we give the family's instruct template so
that the server can still render chat requests, and name it in the output's tokenizer_config.json
(`chat_template_name`) so nobody mistakes it for one that came with the file.
"""

# Gemma 3's instruct template as Google ships it with gemma-3-*-it (tokenizer_config.json).
GEMMA3 = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# GGUF architecture -> (template name, template).
BY_ARCHITECTURE: dict[str, tuple[str, str]] = {"gemma3": ("gemma3", GEMMA3)}


def fallback_template(architecture: str) -> tuple[str, str] | None:
    """(name, template) of the project's standard template for ARCHITECTURE, None if it has none."""
    return BY_ARCHITECTURE.get(architecture)
