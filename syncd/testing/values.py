"""Conformance: whatever value a record holds where text is expected, the connector either
stores it and reads the record back, or refuses that one record with a readable error.

Generated with hypothesis: arbitrary unicode, every JSON type (null, booleans, integers of
any size, floats, arrays, objects) and sizes up to 1 MB (two explicit examples, so the suite
stays fast, and one batch of boundary values). Part of :class:`syncd.testing.conformance.ConnectorConformance`.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..model import ContactWrite
from .contract import option
from .walk import fresh_phone, unique_text

__all__ = ["RecordValuesConformance", "record_values", "MAX_VALUE_BYTES", "VALUE_EXAMPLES"]

MAX_VALUE_BYTES = 1_000_000
VALUE_EXAMPLES = 10          # generated batches per connector (plus the two 1 MB examples)
MAX_ERROR_CHARS = 2_000      # an error names the problem; it does not echo a 1 MB value


def record_values() -> Any:
    """Values a CRM record may hold where a connector expects text (a hypothesis strategy)."""
    from hypothesis import strategies as st   # a test dependency: imported only when used

    json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**80, 2**80)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
    return st.one_of(
        st.text(max_size=200),                                         # any unicode but surrogates
        st.sampled_from(["", " ", "\x00", "a\x00b", "\u202e", "🙂" * 50, "\r\n", "'; --", "%s{}"]),
        json_scalars,
        st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6),
        st.integers(1_000, 20_000).map(lambda n: "ї" * n),             # large, multi-byte
    )


#: Values at the edges of what drivers and JSON encoders bind (one explicit batch, always tried):
#: integers just past 64 bits signed and unsigned, beyond any native type, the largest and
#: smallest floats, a boolean, NUL inside text, and big integers nested in an array and a table.
BOUNDARY_VALUES: list[Any] = [2**63, -(2**63) - 1, 2**64, 10**30, 1.7976931348623157e308, 5e-324,
                              -0.0, True, "a\x00b", [2**70], {"k": 2**64}]


class RecordValuesConformance:
    """Mixed into ``ConnectorConformance``; uses its ``connect``, ``crm`` and helpers."""

    def test_any_value_where_text_is_expected_is_stored_readably_or_refused_alone(self):
        pytest.importorskip("hypothesis")
        from hypothesis import HealthCheck, example, given, settings
        from hypothesis import strategies as st

        connector = self.connect()
        self.require_capability(connector, "contacts_create")
        field = self.crm.text_field

        # a backend over a slow real server may ask for fewer batches (option value_examples)
        @settings(max_examples=int(option(self.crm, "value_examples", VALUE_EXAMPLES)), deadline=None,
                  database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.large_base_example])
        @given(values=st.lists(record_values(), min_size=1, max_size=3))
        @example(values=["x" * MAX_VALUE_BYTES])
        @example(values=["ї" * (MAX_VALUE_BYTES // 2), None])
        @example(values=BOUNDARY_VALUES)
        def write_and_read(values: list[Any]) -> None:
            writes = [ContactWrite(key=unique_text("value"), id=None, fields={field: v},
                                   phones=(fresh_phone(),)) for v in values]
            good = ContactWrite(key=unique_text("good"), id=None, fields={field: unique_text()},
                                phones=(fresh_phone(),))
            results = connector.upsert_contacts([*writes, good])
            assert [r.key for r in results] == [w.key for w in [*writes, good]], \
                "one result per write, in order"
            assert results[-1].ok and results[-1].id, \
                f"a good record failed beside odd values: {results[-1].error}"
            for value, r in zip(values, results):
                if not r.ok:
                    assert isinstance(r.error, str) and r.error.strip(), \
                        f"refused without a reason: {_short(value)}"
                    assert len(r.error) <= MAX_ERROR_CHARS and "Traceback" not in r.error, \
                        f"unreadable error for {_short(value)}: {r.error[:300]}"
                else:
                    assert r.id, f"stored without an id: {_short(value)}"
            stored = [r.id for r in results if r.ok]
            self.settle()
            fetched = [c.id for c in connector.fetch_contacts(stored)]
            assert sorted(fetched) == sorted(stored), \
                f"stored records that cannot be read back: {set(stored) - set(fetched)}"

        write_and_read()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} chars)"
