"""An optimized BLAS under MLX on Linux CPU, loaded before ``mlx.core`` is imported.

The Linux ``mlx-cpu`` wheel links netlib's reference BLAS (``mlx_cpu.libs/libblas-*.so``): its
float32 matmul runs at ~5 GFLOP/s on two cores, so every prompt prefills slowly. A BLAS opened
with ``RTLD_GLOBAL`` before MLX is imported wins the symbol lookup for ``cblas_sgemm`` and the
LAPACK routines, and the same matmul runs at 150-200 GFLOP/s.

Which one: PyPI's ``ngsolve-openblas`` (a project dependency on x86_64 Linux): OpenBLAS built
with DYNAMIC_ARCH (kernels picked for the CPU at run time, so one wheel is portable), plain
``cblas_*`` symbols (``scipy-openblas32`` prefixes them with ``scipy_``, which MLX cannot call),
BSD licensed, 13 MB. It needs ``libgfortran.so.5``, which a bare Linux may lack; mlx-cpu ships a
gfortran of its own under an auditwheel name, so a throw-away folder of symlinks gives the
loader both names (the OpenBLAS file's RPATH is ``$ORIGIN``), and is removed once the libraries
are mapped.

``MLX_SERVER_BLAS``: ``auto`` (default: the above), ``bundled`` (keep MLX's reference BLAS), or
the path of another shared library exporting ``cblas_sgemm``. ``MLX_SERVER_BLAS_THREADS``: BLAS
threads (default: the cores this process may run on; ``OPENBLAS_NUM_THREADS`` is honoured).
Apple Silicon (Accelerate) and CUDA builds are left as they are.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlasInfo:
    """What serves MLX's CPU matmuls in this process, for the startup log and /health."""

    name: str  # e.g. "OpenBLAS 0.3.33 (ngsolve-openblas)" or "bundled reference BLAS (netlib)"
    fast: bool  # an optimized BLAS is in use
    threads: int | None = None
    detail: str = ""  # OpenBLAS's build config and CPU core type, or why the fast BLAS is not in use

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"BLAS: {self.name}{threads}" + (f" ({self.detail})" if self.detail else "")


_info: BlasInfo | None = None
_handle: ctypes.CDLL | None = None  # kept open for the life of the process


def load_fast_blas() -> BlasInfo:
    """Load the fast BLAS once per process (later calls return the first result).

    Call it before anything imports ``mlx.core``: settings, tests' conftest and bench do."""
    global _info
    if _info is None:
        _info = _load()
        if not _info.fast and sys.platform == "linux" and _info.detail:
            log.warning(_info.line())
    return _info


def _load() -> BlasInfo:
    choice = os.environ.get("MLX_SERVER_BLAS", "auto").strip() or "auto"
    if sys.platform == "darwin":
        return BlasInfo("Accelerate (MLX's own)", fast=True)
    if sys.platform != "linux":
        return BlasInfo("MLX's own", fast=False)
    if _cuda_build():
        return BlasInfo("MLX's own (CUDA build: matmuls run on the GPU)", fast=False)
    bundled = "bundled reference BLAS (netlib)"
    if choice == "bundled":
        return BlasInfo(bundled, fast=False, detail="MLX_SERVER_BLAS=bundled")
    if "mlx.core" in sys.modules:
        return BlasInfo(bundled, fast=False, detail="mlx.core was imported before the fast BLAS could load")
    # OpenBLAS's idle workers spin for ~2^28 cycles after each call before they sleep. MLX calls
    # it every few hundred microseconds while decoding, so they never sleep and fight every other
    # thread on the machine: with one other busy process on two cores, decode fell from 20 to
    # 2-4 tok/s. 2^4 cycles makes them sleep at once (measured: 20.7 tok/s under that same load).
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    try:
        if choice == "auto":
            library, source = _ngsolve_openblas(), "ngsolve-openblas"
        else:
            library, source = Path(choice).expanduser(), "MLX_SERVER_BLAS"
        return _describe(_open_with_gfortran(library), source)
    except (OSError, LookupError) as error:
        return BlasInfo(bundled, fast=False, detail=f"fast BLAS not loaded: {error}")


def _cuda_build() -> bool:
    for name in ("mlx-cuda-13", "mlx-cuda-12", "mlx-cuda"):
        try:
            importlib.metadata.distribution(name)
            return True
        except importlib.metadata.PackageNotFoundError:
            continue
    return False


def _installed_files(distribution: str, pattern: str) -> list[Path]:
    """Files of an installed distribution matching PATTERN, found through its metadata (not the
    import system, which a stray folder of the same name on sys.path would fool)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return []
    return sorted(Path(dist.locate_file(f)) for f in dist.files or [] if f.match(pattern))


def _ngsolve_openblas() -> Path:
    found = _installed_files("ngsolve-openblas", "libopenblas*.so*")
    if not found:
        raise LookupError("the ngsolve-openblas package (its libopenblas*.so) is not installed")
    return found[0]


def _open_with_gfortran(library: Path) -> ctypes.CDLL:
    """Open LIBRARY globally, giving its ``libgfortran.so.5`` from mlx-cpu when the system has none."""
    global _handle
    if not library.is_file():
        raise LookupError(f"{library} does not exist")
    gfortran = _installed_files("mlx-cpu", "libgfortran*.so.5*")
    if not gfortran:
        _handle = ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        return _handle
    links = Path(tempfile.mkdtemp(prefix="mlx-server-blas-"))
    try:
        for bundled in gfortran[0].parent.iterdir():  # gfortran's own needs (libquadmath) resolve beside it
            (links / bundled.name).symlink_to(bundled)
        (links / "libgfortran.so.5").symlink_to(gfortran[0])
        (links / library.name).symlink_to(library)
        _handle = ctypes.CDLL(str(links / library.name), mode=ctypes.RTLD_GLOBAL)
    finally:
        shutil.rmtree(links, ignore_errors=True)  # mapped now; the names are no longer needed
    return _handle


def _threads() -> int:
    for name in ("MLX_SERVER_BLAS_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def _describe(handle: ctypes.CDLL, source: str) -> BlasInfo:
    if not hasattr(handle, "cblas_sgemm"):
        raise OSError(f"{source}: the library has no cblas_sgemm")
    threads = None
    name, detail = f"optimized BLAS ({source})", ""
    if hasattr(handle, "openblas_get_config"):
        handle.openblas_set_num_threads(ctypes.c_int(_threads()))
        threads = int(handle.openblas_get_num_threads())
        handle.openblas_get_config.restype = ctypes.c_char_p
        handle.openblas_get_corename.restype = ctypes.c_char_p
        config = handle.openblas_get_config().decode().split()
        version = config[1] if len(config) > 1 else ""
        name = f"OpenBLAS {version} ({source})"
        detail = f"{' '.join(config[2:])}, core {handle.openblas_get_corename().decode()}"
    return BlasInfo(name, fast=True, threads=threads, detail=detail)
