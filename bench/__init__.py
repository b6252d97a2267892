"""Benchmarks that print figures; see bench/gateway_bench.py."""
