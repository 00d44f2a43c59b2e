"""Two server processes on one PostgreSQL database (DATABASE_URL), under load from clients on
both at once, lose no log row: every request either server answered is there once, with the
status its client saw. Needs a PostgreSQL server (the `postgres_url` fixture says how)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from testkit import database
from testkit.live import LiveServer

pytestmark = pytest.mark.e2e

MODEL = "smollm2"
CLIENTS_PER_SERVER, REQUESTS_PER_CLIENT = 4, 25
TAG = re.compile(r"tag-[ab]-\d+-\d+")


@pytest.fixture(scope="module")
def servers(postgres_url, tmp_path_factory, smollm2_dir):
    url = database.create_postgres_database(postgres_url, "mlx_shared")
    models = {"models": [{"id": MODEL, "source": {"path": str(smollm2_dir)}, "context_length": 2048}]}
    started: list[LiveServer] = []
    try:
        for name in "ab":
            started.append(LiveServer(tmp_path_factory.mktemp(f"pg-{name}"), models, database_url=url).start())
        yield url, dict(zip("ab", started))
    finally:
        for server in started:
            server.stop()
        database.drop_postgres_database(url)


def one_request(server: LiveServer, tag: str, i: int, client: int) -> int:
    """A client's first request is a real (tiny) completion, streamed by every other client; the
    rest are bad input (400 rows, cheap: the load is on the database, not the model)."""
    if i == 0:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2,
                "temperature": 0, "user": tag, "stream": client % 2 == 0}
    else:
        body = {"model": MODEL, "messages": [], "user": tag}
    response = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    _ = response.content  # a stream's row is written when it ends
    return response.status_code


def one_client(server: LiveServer, name: str, client: int) -> dict[str, int]:
    tags = [f"tag-{name}-{client}-{i}" for i in range(REQUESTS_PER_CLIENT)]
    return {tag: one_request(server, tag, i, client) for i, tag in enumerate(tags)}


def test_two_servers_under_load_lose_no_row(servers):
    url, by_name = servers
    with ThreadPoolExecutor(2 * CLIENTS_PER_SERVER) as pool:
        futures = [pool.submit(one_client, server, name, c)
                   for name, server in by_name.items() for c in range(CLIENTS_PER_SERVER)]
        sent = {tag: status for f in futures for tag, status in f.result(timeout=600).items()}
    assert len(sent) == 2 * CLIENTS_PER_SERVER * REQUESTS_PER_CLIENT
    assert set(sent.values()) == {200, 400}, sent  # both kinds reached both servers' logs

    rows = database.rows(url, "SELECT request_body, status_code FROM inference_requestlog "
                              "WHERE endpoint = ?", ("/v1/chat/completions",))
    logged = [(match.group(0), row["status_code"]) for row in rows if (match := TAG.search(row["request_body"]))]
    assert len(logged) == len(rows) == len(sent)  # one row a request: none lost, none twice
    assert dict(logged) == sent
