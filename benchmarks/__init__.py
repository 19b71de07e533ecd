"""Benchmark harness: `python -m benchmarks.run` loads generated records through the server's API and
measures each path against the store and a bare endpoint on the same stack (see docs/PERFORMANCE.md)."""
