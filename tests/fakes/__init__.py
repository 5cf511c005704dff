"""Fake Azure endpoints (real servers on 127.0.0.1) for tests, demos and benchmarks."""
