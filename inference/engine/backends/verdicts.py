"""What a load-time probe found, remembered for this process by the weights' fingerprint.

A vision model's probes (vision_text.py, vision_decode.py) run its language model on both
libraries' classes at load, which on CUDA also compiles both classes' kernels: seconds a raw
`mlx_vlm.load` never spends. The same arrays under the same classes agree as they did, so a
model's later loads in the process (a swap back) take the verdict instead of probing again.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

_known: dict[tuple[str, str], object] = {}
_lock = threading.Lock()


def remembered(fingerprint: str, probe: str, run: Callable[[], T]) -> T:
    """`run()`'s result for these weights and this probe: computed on the first call, then
    the same. A probe that raises is not remembered (the next load tries it again)."""
    with _lock:
        if (fingerprint, probe) in _known:
            return _known[(fingerprint, probe)]  # type: ignore[return-value]
    result = run()
    with _lock:
        _known[(fingerprint, probe)] = result
    return result


def forget() -> None:
    """Probe again at the next load (a test that changes what a probe sees)."""
    with _lock:
        _known.clear()
