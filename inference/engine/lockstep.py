"""One model served by several processes (ranks of an `mx.distributed` group) in lockstep.

Rank 0 runs the API and the engine's scheduler; every other rank runs the same engine code
on the same jobs (Engine.follow), so each rank's prompt rendering, prefix cache, stops,
grammar and sampling take the same path, and the collectives inside the sharded model's
forward (backends/sharding.py) meet. Only what a follower cannot know by itself travels, as
orders rank 0 shares through mx.distributed (the same transport the model's own collectives
use, so orders and forwards are ordered by one stream on every rank):
- each job (its spec and request, and the seed every rank's sampler starts from);
- per generated token, whether rank 0's client left (`agree`);
- per request, the prefix of the prompt every rank's cache holds (`common_prefix`), because a
  rank's cache evicts by its own bytes, which differ between shards;
- after each load, whether every rank loaded (`settle`);
- unloads rank 0 decides outside a shared job (TTL, a budget eviction), and a heartbeat.
A collective that fails means a rank is gone (the ring backend raises, it does not hang):
the group is marked lost, the job fails with RankLost (503), and every later job of a
distributed model fails the same way at once.
"""
from __future__ import annotations

import pickle
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import mlx.core as mx
import numpy as np

from registry.specs import ModelSpec

from .types import ChatRequest, EngineError, ModelLoadError, RankLost

HEARTBEAT_SECONDS = 1.0  # how often an idle rank 0 checks its followers are there


@dataclass(frozen=True)
class Order:
    """What rank 0 tells the followers to do next."""

    kind: str  # job | unload | ping | stop
    spec: ModelSpec | None = None
    request: ChatRequest | None = None
    unload: bool = False  # a job that unloads its model
    seed: int = 0  # every rank's sampler starts from it


class Lockstep:
    def __init__(self, group: Any, backend: str = ""):
        self.group = group
        self.rank, self.size = group.rank(), group.size()
        self.backend = backend
        self.lost: str | None = None  # why the group cannot serve any more
        self._lock = threading.Lock()

    @property
    def leads(self) -> bool:
        return self.rank == 0

    def status(self) -> dict:
        return {"ranks": self.size, "rank": self.rank, "backend": self.backend or None,
                "state": "lost" if self.lost else "ok", "error": self.lost}

    # --- rank 0 ---------------------------------------------------------------------

    def lead(self, spec: ModelSpec | None, request: ChatRequest | None, unload: bool = False) -> None:
        """Share a job with the followers and seed this rank's sampler as theirs."""
        seed = random.getrandbits(31)
        self._tell(Order("job", spec, request, unload, seed))
        mx.random.seed(seed)

    def tell_unload(self, spec: ModelSpec) -> None:
        self._tell(Order("unload", spec))

    def ping(self) -> None:
        self._tell(Order("ping"))

    def stop(self) -> None:
        """Let the followers exit (rank 0 shuts down)."""
        if self.lost is None:
            self._tell(Order("stop"))

    def _tell(self, order: Order) -> None:
        if self.lost is not None:
            raise RankLost(self.message())
        with self.guard():
            self._share(order)

    # --- followers ------------------------------------------------------------------

    def next_order(self) -> Order:
        """Wait for rank 0's next order (a follower idles here)."""
        order = self._share(None)
        if order.kind == "job":
            mx.random.seed(order.seed)
        return order

    # --- every rank, at the same point of the same job --------------------------------

    def agree(self, flag: bool) -> bool:
        """Rank 0's flag (whether its client left), on every rank."""
        with self.guard():
            return mx.distributed.all_sum(mx.array(int(flag) if self.leads else 0), group=self.group).item() > 0

    def common_prefix(self, cached: int, trimmable: bool) -> int:
        """How many prompt tokens every rank's cache can start from: the fewest any rank has,
        or 0 when a rank with more cannot trim its cache back."""
        with self.guard():
            mine = mx.array([cached, int(trimmable)], dtype=mx.int64)
            rows = np.array(mx.distributed.all_gather(mine[None], group=self.group)).reshape(self.size, 2)
        least = int(rows[:, 0].min())
        return 0 if any(c > least and not t for c, t in rows) else least

    def settle(self, error: Exception | None) -> None:
        """After a load on every rank: raise this rank's error, or ModelLoadError when another
        rank's load failed, so every rank keeps or drops the model alike."""
        with self.guard():
            failed = mx.distributed.all_sum(mx.array(int(error is not None)), group=self.group).item()
        if error is not None:
            raise error
        if failed:
            raise ModelLoadError(f"{failed} other rank(s) of the distributed group could not load the model")

    # --- transport and failure ------------------------------------------------------

    def _share(self, obj: Any) -> Any:
        """Rank 0's object on every rank: its pickled size, then its bytes, each an all_sum to
        which the others add zeros (mlx_lm.server shares its requests so)."""
        if self.leads:
            data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
            mx.eval(mx.distributed.all_sum(mx.array(data.size), group=self.group))
            mx.eval(mx.distributed.all_sum(mx.array(data), group=self.group))
            return obj
        size = mx.distributed.all_sum(mx.array(0), group=self.group).item()
        data = mx.distributed.all_sum(mx.zeros((size,), dtype=mx.uint8), group=self.group)
        return pickle.loads(memoryview(np.array(data)).tobytes())

    @contextmanager
    def guard(self) -> Iterator[None]:
        """A collective that raises (a peer is gone) marks the group lost and raises RankLost."""
        try:
            yield
        except EngineError:
            raise
        except Exception as exc:
            self.mark_lost(exc)
            raise RankLost(self.message()) from exc

    def mark_lost(self, exc: BaseException) -> None:
        with self._lock:
            if self.lost is None:
                self.lost = f"a rank of the {self.size}-rank group stopped answering: {exc}"

    def message(self) -> str:
        return (f"The distributed group serving this model lost a rank and cannot generate any "
                f"more; restart every rank. ({self.lost})")

