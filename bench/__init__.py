"""Benchmarks of the hub, each figure beside a baseline measured in the same run: `python -m bench`."""
