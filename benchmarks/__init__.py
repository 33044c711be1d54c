"""Benchmarks, run by hand: `python -m benchmarks NAME [--seconds S] [--threads N] [--arch default|peer] --json`."""
