"""How long request-log rows are kept: `manage.py prune_logs --older-than 30d` on demand, and
MLX_SERVER_LOG_RETENTION_DAYS (0: keep for ever) applied as rows are written, at most once an
hour, so a server left running for months does not fill its disk. Stored responses
(/v1/responses with store) are the client's data, not logs, and are not touched."""
from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import RequestLog

BATCH = 5000  # rows deleted per transaction: a writer waits for one batch, not the whole purge
EVERY = 3600.0  # seconds between the automatic prunes

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_last = [float("-inf")]
_lock = threading.Lock()


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, or a number of days."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h, 90m or 45s")
    return timedelta(**{_UNITS[match.group(2) or "d"]: float(match.group(1))})


def prune(older_than: timedelta) -> int:
    """Delete the rows (and their tool-call rows) created more than `older_than` ago."""
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        ids = list(RequestLog.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:BATCH])
        if not ids:
            return deleted
        RequestLog.objects.filter(id__in=ids).delete()
        deleted += len(ids)


def maybe_prune() -> int:
    """The retention setting, applied at most once an hour (called as rows are written)."""
    days = settings.MLX_SERVER_LOG_RETENTION_DAYS
    now = time.monotonic()
    if not days or now - _last[0] < EVERY or not _lock.acquire(blocking=False):
        return 0
    try:
        _last[0] = now
        return prune(timedelta(days=days))
    finally:
        _lock.release()
