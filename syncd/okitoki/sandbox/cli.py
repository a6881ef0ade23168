"""``syncd sandbox``: run the Oki-Toki sandbox in the foreground until SIGINT/SIGTERM.

    syncd sandbox --host 127.0.0.1 --port 8800 --token TOKEN [--data FILE] [--seed demo]
                  [--settle-delay 0s] [--call-update-delay 2s] [--admin-token T]
                  [--profile PATH] [--replay DIR]

It binds loopback unless told otherwise, prints one line ``Oki-Toki sandbox listening on
http://HOST:PORT`` (port 0 picks a free one) and stops cleanly on a signal (the data file gets
its last write).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading

from ...errors import EX_CONFIG, ConfigError
from ..profile import load_profile
from .app import create_app
from .replay import load_replay, replay_app
from .seed import bootstrap
from .server import base_url, bind, make_server
from .settings import DEFAULT_TIMEZONE, SandboxSettings, seconds_of

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8800, help="port (0: any free port)")
    parser.add_argument("--token", default=os.environ.get("SYNCD_SANDBOX_TOKEN"),
                        help="API token of company 1's user (default $SYNCD_SANDBOX_TOKEN)")
    parser.add_argument("--data", metavar="FILE", help="keep the state in this JSON file")
    parser.add_argument("--seed", choices=["demo"], help="start a fresh sandbox with demo data")
    parser.add_argument("--settle-delay", default="0s", help="delay before a call shows in the log")
    parser.add_argument("--call-update-delay", default=None,
                        help="a call's recording URL arrives this long after it appears")
    parser.add_argument("--timezone", default=DEFAULT_TIMEZONE, help="time zone of new companies")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests a minute per token")
    parser.add_argument("--admin-token", default=os.environ.get("SYNCD_SANDBOX_ADMIN_TOKEN"),
                        help="require this bearer token on /_sandbox/ (default: open)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--profile", metavar="PATH",
                        help="serve this API profile (a file like [okitoki] profile) instead of the shipped one")
    parser.add_argument("--replay", metavar="DIR",
                        help="answer with the exchanges `syncd probe --save DIR` recorded")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    try:
        settings = SandboxSettings(
            settle_delay=seconds_of(args.settle_delay) or 0.0,
            call_update_delay=seconds_of(args.call_update_delay),
            timezone=args.timezone, rate_limit_per_minute=args.rate_limit,
            admin_token=args.admin_token, data_file=args.data)
        sock = bind(args.host, args.port)
    except (ValueError, OSError) as exc:
        print(f"syncd sandbox: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(f"syncd sandbox: warning: listening on {args.host}, not loopback", file=sys.stderr)
    token, demo = args.token, args.seed == "demo"
    try:
        profile = load_profile(args.profile) if getattr(args, "profile", None) else None
        replay = load_replay(args.replay) if getattr(args, "replay", None) else None
    except ConfigError as exc:
        for line in exc.problems:
            print(f"syncd sandbox: {line}", file=sys.stderr)
        return EX_CONFIG
    if replay is not None:
        app = replay_app(replay)
    else:
        app = create_app(settings=settings, bootstrap=lambda state: bootstrap(state, token, demo),
                         profile=profile)
    server = make_server(app, log_level=args.log_level)
    print(f"Oki-Toki sandbox listening on {base_url(sock)}", flush=True)
    if threading.current_thread() is threading.main_thread():
        # uvicorn catches SIGINT/SIGTERM, shuts down gracefully, then re-raises the signal to
        # the previous handler: make that one a no-op so a signal means a clean exit 0.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
    server.run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncd sandbox", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
