"""Benchmarks: each one is ``python -m bench.<name>`` (see bench/README.md); none runs in the test suite."""
