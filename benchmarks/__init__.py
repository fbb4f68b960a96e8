"""Niche's benchmarks: `python -m benchmarks` (or `make bench`) runs them all and prints a table.

Each case compiles one program for the cpu target and times it side by side with the same computation
in numpy (interleaved repeats, median of each), in one process: the ratio numpy / Niche is the figure
to compare across machines (absolute times drift). See `benchmarks.cases` for the list and
docs/targets/cpu.md for recorded results.
"""
