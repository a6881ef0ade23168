"""Logging: JSON lines with event/level/timestamp/context, console on a TTY, redaction."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest
import structlog
from structlog.testing import capture_logs

from syncd.logs import configure_logging, redact_processor
from syncd.redact import forget_secrets, register_secret

SECRET = "s3cr3t-token-4242"


@pytest.fixture(autouse=True)
def _clean():
    register_secret(SECRET)
    yield
    structlog.contextvars.clear_contextvars()
    forget_secrets()
    structlog.reset_defaults()
    root = logging.getLogger()
    for h in [h for h in root.handlers if h.get_name() == "syncd"]:
        root.removeHandler(h)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_event_level_utc_timestamp_and_context():
    buf = io.StringIO()
    assert configure_logging("auto", "info", stream=buf) is True  # not a TTY → JSON
    structlog.contextvars.bind_contextvars(run_id="r-1", job="push", stream="crm:contacts")
    structlog.get_logger().info("job_finished", counts={"created": 2})
    (line,) = _lines(buf)
    assert line["event"] == "job_finished" and line["level"] == "info"
    assert line["run_id"] == "r-1" and line["job"] == "push" and line["stream"] == "crm:contacts"
    assert line["counts"] == {"created": 2}
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset().total_seconds() == 0


def test_console_format_on_a_terminal():
    tty = _Tty()
    assert configure_logging("auto", "info", stream=tty) is False
    structlog.get_logger().info("hello", n=1)
    text = tty.getvalue()
    assert "hello" in text and "n=1" in text and not text.startswith("{")


def test_json_forced_even_on_a_terminal():
    tty = _Tty()
    assert configure_logging("json", "info", stream=tty) is True
    structlog.get_logger().warning("x")
    assert _lines(tty)[0]["level"] == "warning"


def test_level_filters_lower_events():
    buf = io.StringIO()
    configure_logging("json", "warning", stream=buf)
    structlog.get_logger().info("quiet")
    structlog.get_logger().error("loud")
    assert [line["event"] for line in _lines(buf)] == ["loud"]


def test_redaction_processor_masks_nested_values():
    out = redact_processor(None, "info", {"event": f"token {SECRET}", "body": {"a": [SECRET]},
                                          "url": "https://x/?api_token=abcdef123"})
    assert SECRET not in json.dumps(out)
    assert out["url"] == "https://x/?api_token=***"


def test_real_json_output_has_no_secret_in_fields_or_tracebacks():
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    log = structlog.get_logger()
    log.info(f"calling with {SECRET}", params={"api_token": SECRET})
    try:
        raise RuntimeError(f"remote said no to {SECRET}")
    except RuntimeError:
        log.exception("job_failed")
    text = buf.getvalue()
    assert SECRET not in text
    assert "remote said no to ***" in text


def test_stdlib_library_logs_go_through_the_same_pipeline_at_warning():
    buf = io.StringIO()
    configure_logging("json", "debug", stream=buf)
    logging.getLogger("httpx").info("HTTP Request: GET ... 200")  # below warning: dropped
    logging.getLogger("apscheduler.scheduler").warning(f"job missed {SECRET}")
    (line,) = _lines(buf)
    assert line["level"] == "warning" and line["logger"] == "apscheduler.scheduler"
    assert SECRET not in line["event"] and "timestamp" in line


def test_capture_logs_sees_daemon_events_with_redacted_errors():
    with capture_logs(processors=[redact_processor]) as logs:
        structlog.get_logger().error("ACTION_NEEDED", error=f"401 for {SECRET}")
    assert logs == [{"event": "ACTION_NEEDED", "error": "401 for ***", "log_level": "error"}]


def test_routine_scheduler_skips_are_not_logged_but_other_warnings_are():
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    sched = logging.getLogger("apscheduler.scheduler")
    sched.warning('Execution of job "push" skipped: maximum number of running instances reached (1)')
    sched.warning('Run time of job "push" was missed by 0:00:01')
    sched.warning("something else went wrong")
    assert [line["event"] for line in _lines(buf)] == ["something else went wrong"]
