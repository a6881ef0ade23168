"""The conformance suite passes a correct connector and catches the classic connector bugs.

Each case runs the whole suite (in a pytester sandbox, through the installed ``pytest11``
plugin) against the in-memory connector of ``memory_crm.py`` with one flaw switched on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent

SUITE_MODULE = '''
import pytest
from memory_crm import MemoryBackend
from syncd.testing.conformance import ConnectorConformance

@pytest.fixture
def conformance_crm(tmp_path):
    return MemoryBackend(tmp_path, frozenset({flaws!r}))

class TestMemory(ConnectorConformance):
    pass
'''


def run_suite(pytester: pytest.Pytester, *flaws: str) -> pytest.RunResult:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_memory=SUITE_MODULE.format(flaws=list(flaws)))
    return pytester.runpytest("-q", "-p", "no:cacheprovider", "-rfs")


def failed(result: pytest.RunResult) -> set[str]:
    return {line.split("::")[-1].split(" ")[0] for line in result.outlines
            if line.startswith("FAILED")}


def test_a_correct_connector_passes_every_test(pytester):
    result = run_suite(pytester)
    # skipped: no do-not-call field, no calls_update, no unreadable records, no untracked
    # rows, no time spellings (the memory CRM cannot produce them)
    result.assert_outcomes(passed=20, skipped=5)


def test_every_inherited_test_carries_the_conformance_marker(pytester):
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_memory=SUITE_MODULE.format(flaws=[]))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-m", "not conformance")
    result.assert_outcomes(deselected=25)


@pytest.mark.parametrize(("flaw", "caught_by"), [
    ("strict_timestamp", "test_equal_timestamps_at_page_boundaries_lose_and_repeat_nothing"),
    ("create_twice", "test_create_then_update_repeated_is_idempotent"),
    ("phones_append", "test_several_phones_per_contact_round_trip"),
    ("substring_phone", "test_find_by_phone_matches_exactly_after_normalising"),
    ("calls_twice", "test_logging_the_same_call_twice_leaves_one_activity"),
    ("batch_raises", "test_a_failing_record_does_not_sink_the_batch"),
    ("auth_generic", "test_auth_failure_surfaces_as_authentication_error_with_a_readable_message"),
    ("log_secret", "test_secrets_never_reach_logs_or_errors"),
    ("text_only", "test_any_value_where_text_is_expected_is_stored_readably_or_refused_alone"),
    ("echo_value", "test_any_value_where_text_is_expected_is_stored_readably_or_refused_alone"),
])
def test_the_suite_catches_a_classic_connector_bug(pytester, flaw, caught_by):
    assert caught_by in failed(run_suite(pytester, flaw))


def test_missing_abilities_skip_with_a_reason_naming_them(pytester):
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_memory=SUITE_MODULE.format(flaws=[]).replace(
        "return MemoryBackend(tmp_path, frozenset([]))",
        "b = MemoryBackend(tmp_path)\n    b.abilities = frozenset()\n    return b"))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-rfs")
    for ability in ("equal_timestamps", "throttle", "auth_failure", "count_activities"):
        result.stdout.fnmatch_lines([f"*does not declare the ability '{ability}'*"])
    assert result.ret == 0
