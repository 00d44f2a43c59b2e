"""Benchmarks. Importing the package first loads the fast BLAS (inference/blas.py) before any bench imports MLX."""
from inference.blas import load_fast_blas

load_fast_blas()
