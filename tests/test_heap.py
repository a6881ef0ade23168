"""The daemon's start-up heap leaves the cyclic collector's way (syncd.heap): what exists at
start is frozen, what is made later is collected as before."""

from __future__ import annotations

import gc
import weakref

from syncd.heap import settle


class Node:
    def __init__(self) -> None:
        self.me = self          # a reference cycle: only the cyclic collector frees it


def test_settle_freezes_what_exists_and_collects_start_up_garbage() -> None:
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = Node()
    try:
        frozen = settle()
        assert gone() is None                   # start-up garbage was collected first
        # (frozen objects freed by reference counting since, in other threads, leave the count)
        assert frozen > 0 and 0 < gc.get_freeze_count() <= frozen
        assert not any(o is kept for o in gc.get_objects())   # in no generation: frozen
        later = Node()
        assert any(o is later for o in gc.get_objects())      # later objects: collected as before
        ref = weakref.ref(later)
        del later
        gc.collect()
        assert ref() is None
    finally:
        gc.unfreeze()
