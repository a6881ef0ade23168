"""Checks of single configuration values that types alone do not express: names that must
not be blank, numbers that are not booleans and fit in 64 bits, nesting, addresses, ports, URLs.

Each function returns what is wrong in words (the caller prefixes the key path), or the
parsed value; none of them touches the network (see :mod:`syncd.config_online` for that).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field

__all__ = ["Name", "OkitokiId", "INT64_MAX", "MAX_DEPTH", "check_number", "too_deep_at",
           "host_problem", "listen_address", "http_url_problems", "state_url_problems"]

INT64_MAX = 2**63 - 1    # the widest integer the state database and CRMs store
MAX_DEPTH = 16           # tables and arrays within each other; the deepest real key has 4


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


# Names, ids of fields and secrets: an empty or blank one is always a mistake.
Name = Annotated[str, AfterValidator(_not_blank)]
# Ids of Oki-Toki objects (dialers, lists): positive, and within a signed 32-bit integer.
OkitokiId = Annotated[int, Field(ge=1, le=2**31 - 1)]


def check_number(value: Any, annotation: Any) -> Any:
    """``value`` unchanged, or ValueError: pydantic takes ``true`` for 1 (in a configuration
    file that is a mistake), and TOML integers may exceed what anything downstream stores."""
    kinds = _scalar_kinds(annotation)
    if isinstance(value, bool) and kinds & {int, float} and bool not in kinds:
        raise ValueError(f"should be a number, not {str(value).lower()}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        raise ValueError(f"{value} is out of range (at most {INT64_MAX})")
    return value


def _scalar_kinds(tp: Any) -> set[Any]:
    """The plain types a field annotation admits (``int | None`` → {int, NoneType})."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _scalar_kinds(get_args(tp)[0])
    if origin is Union or type(tp).__name__ == "UnionType":
        return set().union(*(_scalar_kinds(a) for a in get_args(tp)))
    return {tp}


def too_deep_at(data: Any) -> tuple[Any, ...] | None:
    """The key path of the first value nested deeper than :data:`MAX_DEPTH` (None: fine)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if len(loc) > MAX_DEPTH:
            return loc[:MAX_DEPTH + 1]
        if isinstance(value, Mapping):
            stack += [(loc + (k,), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(loc + (i,), v) for i, v in enumerate(value)]
    return None

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def host_problem(host: str) -> str | None:
    """None if ``host`` is an IP address (IPv6 without brackets) or a host name."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return f'"{host}" is not a host name or an IP address'
    labels = ascii_host.rstrip(".").split(".")
    if (not ascii_host or len(ascii_host) > 253 or not all(_LABEL.match(x) for x in labels)
            or all(x.isdigit() for x in labels)):   # 999.1.1.1 is a bad address, not a name
        return f'"{host}" is not a host name or an IP address'
    return None


def _port(text: str, lowest: int = 1) -> int | None:
    ok = text.isascii() and text.isdigit() and len(text) <= 5 and lowest <= int(text) <= 65535
    return int(text) if ok else None


def listen_address(text: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9410"``, ``"[::1]:9410"``, ``"localhost:9410"`` → (host, port); None if
    it is not such an address (port 0-65535; 0 lets the system pick one)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            if ipaddress.ip_address(host).version != 6:
                return None
        except ValueError:
            return None
    elif ":" in host:                       # an IPv6 address must be written in brackets
        return None
    port = _port(port_text, lowest=0)
    if port is None or not host or host_problem(host) is not None:
        return None
    return host, port


def http_url_problems(url: str) -> list[str]:
    """What keeps ``url`` from being a base URL: http(s), a host, a valid port, no query,
    fragment or credentials."""
    example = '(e.g. "https://acme.oki-toki.net")'
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [f'"{url}" is not a valid URL (a port must be 1-65535) {example}']
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        return [f'"{url}" is not an http(s) URL {example}']
    problems = []
    why = host_problem(parts.hostname)
    if why:
        problems.append(why)
    if port == 0:
        problems.append(f'"{url}": the port must be 1-65535')
    if parts.query or url.rstrip().endswith("?"):
        problems.append(f'"{url}" has a query string; give the base URL only {example}')
    if parts.fragment or "#" in url:
        problems.append(f'"{url}" has a fragment (#...); give the base URL only {example}')
    if parts.username is not None or parts.password is not None:
        problems.append("must not hold a user name or password; the token is a key of its own")
    if any(c.isspace() for c in url):
        problems.append(f'"{url}" holds white space')
    return problems


def state_url_problems(url: str) -> list[str]:
    """What is wrong with a ``sqlite://`` or ``postgresql://`` state URL before connecting:
    its syntax, host and port; for SQLite, a path that cannot be a database file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
        backend = u.get_backend_name()
    except (ArgumentError, ValueError):
        return ["is not a valid database URL (e.g. sqlite:////var/lib/syncd/state.db)"]
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            return []
        path = Path(u.database)
        if path.is_dir():
            return [f'"{path}" is a directory; name the database file in it '
                    f'(e.g. sqlite:///{path}/state.db)']
        if path.exists() and not path.is_file():
            return [f'"{path}" is not a regular file']
        parent = next((d for d in path.absolute().parents if d.exists()), None)
        if parent is not None and not parent.is_dir():
            return [f'"{parent}" is not a directory, so "{path}" cannot be created']
        return []
    problems = []
    if u.host and not unquote(u.host).startswith("/"):   # "/run/postgresql": a socket directory
        why = host_problem(u.host)
        if why:
            problems.append(why)
    if u.port is not None and not 1 <= u.port <= 65535:
        problems.append(f"the port must be 1-65535 (got {u.port})")
    if not u.database:
        problems.append("names no database (e.g. postgresql+psycopg://syncd@db/syncd)")
    return problems
