"""Reports of what the daemon did: the API call journal and the job runs (the event log),
filtered, grouped and exported for people who must explain a bill or a run (``syncd journal``,
``syncd history``). Reads the state database only; calls no remote system."""

from .command import add_arguments, parse_when, run

__all__ = ["add_arguments", "parse_when", "run"]
