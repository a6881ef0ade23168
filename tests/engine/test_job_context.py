"""The daemon binds ``job`` (and ``run_id``) around each job for its own log lines
(job_finished, job_error, job_deferred); the syncer's per-job binding must leave them as the
daemon bound them, or those lines no longer say which job they are about."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs


def test_a_syncer_job_leaves_the_daemons_job_binding_in_place(world):
    syncer, _, _ = world
    structlog.contextvars.bind_contextvars(job="pull:crm:contacts", run_id="r1")
    try:
        syncer.pull_crm_contacts()
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            structlog.get_logger().info("job_finished")
        assert logs[0]["job"] == "pull:crm:contacts" and logs[0]["run_id"] == "r1"
        syncer.push()   # a job of another name binds its own name only while it runs
        assert structlog.contextvars.get_contextvars()["job"] == "pull:crm:contacts"
    finally:
        structlog.contextvars.unbind_contextvars("job", "run_id")
