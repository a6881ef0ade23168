"""The ``syncd`` console script (placeholder until the CLI lands)."""


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("syncd: CLI not built yet")
