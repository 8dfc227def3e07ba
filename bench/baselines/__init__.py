"""Baseline functions the benchmarks compare the product against."""
