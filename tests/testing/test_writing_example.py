"""The complete example of docs/connectors/writing.md works as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "writing.md"
BLOCK = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.S)


def test_the_documented_connector_passes_the_conformance_suite(pytester):
    files = dict(BLOCK.findall(DOC.read_text()))
    assert set(files) == {"acme_connector.py", "test_acme_conformance.py"}
    for name, code in files.items():
        pytester.path.joinpath(name).write_text(code)
    pytester.syspathinsert()
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-rfs")
    result.stdout.fnmatch_lines(["*connector 'acme' declares do_not_call=False*"])
    # no do-not-call, no delete, no calls_update, no unreadable records, untracked rows or
    # time spellings in the documented example
    result.assert_outcomes(passed=19, skipped=6)
