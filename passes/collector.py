"""Pausing CPython's cyclic garbage collector while the compiler builds and rewrites a graph.

Building a graph (`compiler.irgen`) and running the graph passes (`passes.manager`, the fusion engine)
allocate many small containers and keep large graphs alive. The collector's automatic runs then
rescan the whole live heap again and again, a cost that grows with the program and makes compiling
an 80-layer model spend a fifth of its time in collections. Nothing these stages build needs the
collector to be freed while they run: reference counting frees the rest as usual, and whatever cycles
remain are collected once the collector is switched back on. Pausing nests: the collector is restored
to the state it was in.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector for the body, then restore it as it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
