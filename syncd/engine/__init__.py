"""The sync engine: merge, matching, rules, outbox, cursors and the flows of DESIGN.md.

The daemon and the CLI use only this facade::

    syncer = build_syncer(config)            # opens the (migrated) store, both sides
    syncer.pull_crm_contacts(); syncer.pull_okitoki_contacts(); syncer.pull_okitoki_calls()
    syncer.push(stop_event); syncer.housekeeping(); syncer.cycle(dry_run=False)
    syncer.verify(repair=False)              # full comparison, drift report (syncd verify)
    syncer.hint_call(session_id); syncer.close()

and, from :mod:`syncd.engine.status`, what ``syncd status``, ``conflicts``, ``dead-letters``
and ``resync`` read and do on the state database (the CLI calls them through this module).
"""

from .build import build_syncer
from .status import (drop_dead_letters, list_conflicts, list_dead_letters, resync,
                     retry_dead_letters, status_report)
from .syncer import CycleReport, RunReport, Syncer

__all__ = ["Syncer", "RunReport", "CycleReport", "build_syncer", "status_report",
           "list_conflicts", "list_dead_letters", "retry_dead_letters", "drop_dead_letters",
           "resync"]
