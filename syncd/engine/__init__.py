"""The sync engine: merge, matching, rules, outbox, cursors and the flows of DESIGN.md.

The daemon and the CLI use only this facade::

    syncer = build_syncer(config)            # opens the (migrated) store, both sides
    syncer.pull_crm_contacts(); syncer.pull_okitoki_contacts(); syncer.pull_okitoki_calls()
    syncer.push(stop_event); syncer.housekeeping(); syncer.cycle(dry_run=False)
    syncer.verify(repair=False)              # full comparison, drift report (syncd verify)
    syncer.hint_call(session_id); syncer.close()

and :mod:`syncd.engine.status` for ``syncd status`` and the dead-letter commands.
"""

from .build import build_syncer
from .syncer import CycleReport, RunReport, Syncer

__all__ = ["Syncer", "RunReport", "CycleReport", "build_syncer"]
