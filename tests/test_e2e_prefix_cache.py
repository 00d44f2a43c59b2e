"""The in-memory prefix cache through the live server: reuse across turns, greedy equality, swap
clears. The server here keeps no prefix cache on disk (MLX_SERVER_PROMPT_CACHE_DISK_BYTES=0),
so a swap away and back is cold; tests/test_disk_cache.py and test_e2e_residency.py hold the
disk cache, which makes it warm."""
import pytest

from testkit.live import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm2_dir, smollm2_bf16_dir):
    from tests.fixtures_models import smollm2_entries

    models = {"default": "smollm2", "models": smollm2_entries(smollm2_dir, smollm2_bf16_dir)}
    with LiveServer(tmp_path_factory.mktemp("prefix"), models,
                    env={"MLX_SERVER_PROMPT_CACHE_DISK_BYTES": "0"}).start() as server:
        yield server


@pytest.fixture(scope="module")
def openai_client(server):
    return server.openai()

SYSTEM = {"role": "system", "content": "You are a concise assistant who answers in one sentence."}
TURN1 = [SYSTEM, {"role": "user", "content": "Name a large animal that lives in the sea."}]


def ask(client, messages, model="smollm2", **kw):
    return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=30, **kw)


def cached(response) -> int:
    return response.usage.prompt_tokens_details.cached_tokens


def turn2(answer: str) -> list[dict]:
    return TURN1 + [{"role": "assistant", "content": answer},
                    {"role": "user", "content": "How much does it weigh?"}]


def test_second_turn_reuses_the_first_and_greedy_output_is_unchanged(openai_client, server):
    ask(openai_client, TURN1, model="smollm2-bf16")  # swap away: the main model's cache is dropped
    first = ask(openai_client, TURN1)
    assert cached(first) == 0
    answer = first.choices[0].message.content
    follow = turn2(answer)

    hit = ask(openai_client, follow)
    assert cached(hit) >= first.usage.prompt_tokens  # the whole first prompt, and more
    assert cached(hit) < hit.usage.prompt_tokens

    ask(openai_client, TURN1, model="smollm2-bf16")  # swap away and back: cache gone
    cold = ask(openai_client, follow)
    assert cached(cold) == 0
    assert cold.choices[0].message.content == hit.choices[0].message.content
    assert cold.usage.completion_tokens == hit.usage.completion_tokens

    rows = server.log_rows()
    assert rows[-1]["cached_tokens"] == 0 and rows[-3]["cached_tokens"] == cached(hit)


def test_exact_repeat_and_streamed_requests_hit_too(openai_client):
    messages = [SYSTEM, {"role": "user", "content": "What colour is the sky on a clear day?"}]
    a = ask(openai_client, messages)
    chunks = list(ask(openai_client, messages, stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens == a.usage.prompt_tokens - 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == a.choices[0].message.content
    # A streamed answer is stored as well: the next turn after it hits.
    follow = messages + [{"role": "assistant", "content": text}, {"role": "user", "content": "Why?"}]
    assert cached(ask(openai_client, follow)) > a.usage.prompt_tokens


def test_shared_system_prompt_is_reused_across_users(openai_client):
    long_system = {"role": "system", "content": "Rules of the house. " * 60}
    a = ask(openai_client, [long_system, {"role": "user", "content": "Hello, I am Ann."}])
    b = ask(openai_client, [long_system, {"role": "user", "content": "Hi there, Bob here."}])
    assert cached(b) >= 0.8 * a.usage.prompt_tokens
