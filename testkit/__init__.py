"""What the test suite and the benchmarks share: a server in its own process (live.py) and the
constrained-decoding schema (schemas.py). Neither tests/ nor bench/ imports the other."""
