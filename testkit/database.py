"""The database a live server writes its log rows to: its own SQLite file, or, where a
PostgreSQL URL is given (DATABASE_URL, or a test's shared one), a database on that server.
Tests and benchmarks read the rows back through here, whichever it is."""
from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROWS = "SELECT * FROM inference_requestlog ORDER BY id"


def _psycopg():
    import psycopg  # only where PostgreSQL is used: the SQLite default needs no driver
    from psycopg.rows import dict_row

    return psycopg, dict_row


def _with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_postgres_database(server_url: str, prefix: str = "mlx_test") -> str:
    """A new, empty database on the PostgreSQL server of `server_url`; its URL."""
    psycopg, _ = _psycopg()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_with_name(server_url, "postgres"), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return _with_name(server_url, name)


def drop_postgres_database(url: str) -> None:
    psycopg, _ = _psycopg()
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_with_name(url, "postgres"), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(database: str | Path, sql: str = ROWS, params: tuple = ()) -> list[dict]:
    """`sql`'s rows as dicts, from a PostgreSQL URL or a SQLite file (`?` placeholders either way)."""
    if isinstance(database, str) and database.startswith(("postgres://", "postgresql://")):
        psycopg, dict_row = _psycopg()
        with psycopg.connect(database, row_factory=dict_row) as db:
            return list(db.execute(sql.replace("?", "%s"), params))
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql, params)]
