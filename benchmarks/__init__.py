"""Benchmarks of waagent-doctor: `python -m benchmarks [NAME ...]` (also `make bench`).

Each `benchmarks/bench_<name>.py` module has `main() -> int` (0: every goal met, 1: a goal
missed); adding a benchmark is adding such a file.
"""
