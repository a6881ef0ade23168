"""Checks of single configuration values that types cannot express: addresses, ports, URLs.

Each function returns what is wrong in words (the caller prefixes the key path), or the
parsed value; none of them touches the network (see :mod:`syncd.config_online` for that).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["host_problem", "listen_address", "http_url_problems", "state_url_problems"]

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
    if u.host:
        why = host_problem(u.host)
        if why:
            problems.append(why)
    if u.port is not None and not 1 <= u.port <= 65535:
        problems.append(f"the port must be 1-65535 (got {u.port})")
    if not u.database:
        problems.append("names no database (e.g. postgresql+psycopg://syncd@db/syncd)")
    return problems
