"""Benchmarks: `make bench` runs every `bench/bench_*.py` module and writes bench/results/.

Each module exposes `run() -> list[Figure]`. Figures are medians and ratios, never pass/fail:
these machines are noisy, and a benchmark is a measurement, not a test.
"""
