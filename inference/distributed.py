"""This server process as a rank of an mx.distributed group (models.yaml's `distributed:`).

A group is named by the environment mlx.launch (or the user, on each machine) sets: a ring
or JACCL hostfile and MLX_RANK, or NCCL's MLX_WORLD_SIZE. `manage.py runserver` joins it
before anything else: rank 0 serves the API, every other rank follows it (Engine.follow).
"""
from __future__ import annotations

import os

import mlx.core as mx

from .engine.lockstep import Lockstep

_lockstep: Lockstep | None = None


def backend_named() -> str:
    """The backend the environment sets up a group for ("" when it names none)."""
    if os.environ.get("MLX_IBV_DEVICES") or os.environ.get("MLX_JACCL_COORDINATOR"):
        return "jaccl"
    if os.environ.get("MLX_WORLD_SIZE"):
        return "nccl"
    if os.environ.get("MLX_HOSTFILE"):
        return "ring"
    return ""


def join() -> Lockstep | None:
    """Connect to the other ranks (waits until every rank is up); None when no group is
    named or it has one rank. A bad hostfile or an unreachable peer raises at start-up."""
    global _lockstep
    backend = backend_named()
    if not backend:
        return None
    group = mx.distributed.init(strict=True, backend=backend)
    if group.size() > 1:
        _lockstep = Lockstep(group, backend)
    return _lockstep


def current() -> Lockstep | None:
    """The group this process joined (None: it serves alone)."""
    return _lockstep
