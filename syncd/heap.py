"""The daemon's heap after start-up: out of the cyclic collector's way.

What ``syncd run`` builds before its first job (imported modules, the validated
configuration, connectors, SQLAlchemy's compiled statements) lives as long as the process,
and there are hundreds of thousands of such objects. Every full pass of the collector walked
them all again; a push of thousands of records allocates enough to trigger many passes
(about 4 % of the CPU of an initial sync). :func:`settle` collects what start-up left over and
moves the rest to the permanent generation (:func:`gc.freeze`). Objects made later are
collected as before, and reference counting still frees frozen objects no longer used; only a
frozen reference cycle dropped later stays until exit, which the start-up heap's size bounds.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> int:
    """Collect start-up garbage and freeze what is left; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
