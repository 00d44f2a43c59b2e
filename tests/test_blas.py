"""The fast BLAS under MLX on Linux CPU (inference/blas.py): loaded before MLX, serving MLX's
matmuls (the symbol MLX resolves is OpenBLAS's, not the bundled netlib one), reported, and a
clean fallback with one log line when it cannot be had."""
from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINUX_X86 = sys.platform == "linux" and platform.machine() == "x86_64"
pytestmark = pytest.mark.skipif(not LINUX_X86, reason="the fast BLAS is a dependency on x86_64 Linux only")

# Which shared object serves the cblas_sgemm that libmlx's undefined reference binds to: ELF
# binds it in the global scope first (where an RTLD_GLOBAL library sits), then in libmlx's own
# dependencies (the bundled libblas). Printed by a child process, so each case starts clean.
PROBE = """
import ctypes, sys
from inference.blas import load_fast_blas
info = load_fast_blas()
import mlx.core as mx, numpy as np

class DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]

from pathlib import Path
libc = ctypes.CDLL(None)
libmlx = ctypes.CDLL(str(Path(mx.__file__).parent / "lib" / "libmlx.so"))
sgemm = libc.cblas_sgemm if hasattr(libc, "cblas_sgemm") else libmlx.cblas_sgemm
where = DlInfo()
libc.dladdr(ctypes.cast(sgemm, ctypes.c_void_p), ctypes.byref(where))
a, b = np.random.default_rng(0).normal(size=(2, 64, 96)).astype(np.float32)
c = np.array(mx.array(a) @ mx.array(b.T))
print(info.fast, where.fname.decode(), float(np.abs(c - a @ b.T).max()), info.line(), sep="\\n")
"""


def probe(env: dict[str, str], prelude: str = "") -> tuple[list[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", prelude + PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(), result.stderr


def test_this_process_runs_mlx_on_openblas():
    from django.conf import settings

    from inference.blas import load_fast_blas

    info = load_fast_blas()
    assert info.fast and info.name.startswith("OpenBLAS 0.3") and "ngsolve-openblas" in info.name
    assert info.threads == len(os.sched_getaffinity(0)) or os.environ.get("OPENBLAS_NUM_THREADS")
    assert "DYNAMIC_ARCH" in info.detail
    assert settings.MLX_SERVER_GGUF_DTYPE == "float32"  # auto follows the fast BLAS


def test_mlx_matmul_binds_to_openblas_and_is_right():
    (fast, library, error, line), stderr = probe({})
    assert fast == "True"
    assert "libopenblas" in Path(library).name, library
    assert float(error) < 1e-3
    assert line.startswith("BLAS: OpenBLAS")
    assert "BLAS" not in stderr  # no warning when it loads


def test_bundled_on_request_keeps_the_wheels_blas():
    (fast, library, error, line), _ = probe({"MLX_SERVER_BLAS": "bundled"})
    assert fast == "False" and Path(library).name.startswith("libblas-"), library
    assert float(error) < 1e-3
    assert line == "BLAS: bundled reference BLAS (netlib) (MLX_SERVER_BLAS=bundled)"


def test_a_library_that_cannot_load_falls_back_with_one_log_line(tmp_path):
    missing = tmp_path / "libnothere.so"
    (fast, library, error, line), stderr = probe({"MLX_SERVER_BLAS": str(missing)})
    assert fast == "False" and Path(library).name.startswith("libblas-")
    assert float(error) < 1e-3  # the server goes on, on the bundled BLAS
    warnings = [ln for ln in stderr.splitlines() if "BLAS" in ln]
    assert warnings == [f"BLAS: bundled reference BLAS (netlib) (fast BLAS not loaded: {missing} does not exist)"]
    assert line == warnings[0]


def test_too_late_after_mlx_is_imported_says_so():
    (fast, library, _, line), stderr = probe({}, prelude="import mlx.core\n")
    assert fast == "False" and Path(library).name.startswith("libblas-")
    assert "mlx.core was imported before the fast BLAS could load" in line and line in stderr


def test_a_stray_mlx_folder_on_the_path_does_not_hide_mlx_cpus_gfortran(tmp_path):
    (tmp_path / "mlx").mkdir()  # a namespace-package twin, as a stray folder in the cwd would be
    result = subprocess.run(
        [sys.executable, "-c", "from inference.blas import load_fast_blas; print(load_fast_blas().fast)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"},
    )
    assert result.stdout.strip() == "True", result.stderr


def test_the_test_process_itself_loaded_openblas_globally():
    assert hasattr(ctypes.CDLL(None), "openblas_get_config")  # RTLD_GLOBAL, before MLX
