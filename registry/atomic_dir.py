"""Model folders built aside and renamed into place, with a manifest that says what they hold.

A folder the server may load is never half written: it is built in a hidden sibling, then
swapped in by renames (an earlier folder is retired first and restored if the swap fails).
The manifest names the build, so an unchanged one is reused and only an earlier build (or an
empty folder) is ever replaced. Plain standard library: registry/gguf uses it and stays a
library that knows no registry or Django.
"""
from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def read_manifest(folder: Path, name: str) -> dict[str, Any] | None:
    """The manifest `name` in `folder`, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(folder) / name).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def replace_refusal(out_dir: Path, manifest: str) -> str | None:
    """Why `out_dir` must not be replaced (a file, or a folder with other content: a wrong
    --out must not delete it), or None when it is absent, empty or an earlier build."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return f"{out_dir} exists and is not a folder"
    if any(out_dir.iterdir()) and read_manifest(out_dir, manifest) is None:
        return f"{out_dir} is not empty and holds no {manifest} from an earlier build"
    return None


@contextmanager
def built_aside(out_dir: Path, *, label: str) -> Iterator[Path]:
    """A fresh hidden folder next to `out_dir` to build in; when the block ends normally it
    takes `out_dir`'s place, otherwise it is removed and `out_dir` is left as it was."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.{label}-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = out_dir.with_name(f".{out_dir.name}.replaced-{uuid.uuid4().hex[:8]}")
    out_dir.rename(retired)
    try:
        staging.rename(out_dir)
    except OSError:
        retired.rename(out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)
