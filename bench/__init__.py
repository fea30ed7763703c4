"""Benchmarks: the load generator, the bare relay baseline, and `make bench`'s runner."""
