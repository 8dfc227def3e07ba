"""Benchmarks for latency, cold start, burst throughput and cost: `./dev bench`."""
