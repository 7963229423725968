"""``fundiff serve``: the local web UI (gradio) over one model, loaded once.

Listens on 127.0.0.1 (this computer only) unless ``--host`` says otherwise; jobs go through a queue
and run ``--concurrency`` at a time (default 1: in order of arrival).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import sys
from pathlib import Path

from fundiff.commands.arguments import add_backend_args, number
from fundiff.errors import FundiffError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this computer (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """FundiffError unless ``port`` on ``host`` can be listened on (checked before the model is loaded)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise FundiffError(f"--host {host}: not an address of this computer ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise FundiffError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): is another server using "
                               "it? Choose another --port") from None


def register(sub) -> None:
    port = number(int, 1, True, "a port number 1..65535", maximum=65535)

    p = sub.add_parser(
        "serve", help="a local web UI: generate, SDEdit (upload or draw), inpaint, anagrams, hybrids",
        description="Serve a web UI (gradio; needs pip install 'fundiff[web]') over one model, loaded once: tabs for "
                    "generation, SDEdit from an uploaded image or a drawing, inpainting with a painted mask, visual "
                    "anagrams with their animation, and hybrid images. Listens on 127.0.0.1 (this computer only) "
                    "by default; jobs queue and run one at a time, in order, with a progress bar.")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this computer only; another, e.g. 0.0.0.0, "
                        "exposes the UI to your network and needs --auth, --auth-file or --no-auth)")
    p.add_argument("--port", type=port, default=7860, help="port (default 7860)")
    p.add_argument("--max-queue", type=number(int, 1, True, "a whole number in 1..1000", maximum=1000), default=16,
                   help="jobs that may wait in the queue (default 16, at most 1000)")
    p.add_argument("--concurrency", type=number(int, 1, True, "a whole number in 1..32", maximum=32), default=1,
                   help="jobs run at once (default 1: one at a time, in order of arrival; at most 32, each holds its "
                        "own images)")
    p.add_argument("--quiet", action="store_true", help="do not print gradio's start-up messages")
    g = p.add_argument_group("access")
    g.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                   help="require this login (repeatable); the password shows in the process list, so prefer --auth-file")
    g.add_argument("--auth-file", type=Path, default=None, metavar="FILE",
                   help="require a login from FILE: one USER:PASSWORD per line ('#' comments and blank lines ignored)")
    g.add_argument("--no-auth", action="store_true",
                   help="serve a non-loopback --host without a login (anyone who can reach it can use the UI)")
    add_backend_args(p)
    p.set_defaults(func=cmd_serve)


def parse_logins(items: list[str], path: Path | None) -> list[tuple[str, str]]:
    """(user, password) pairs from ``--auth USER:PASSWORD`` values and an ``--auth-file``."""
    entries = [("--auth", item) for item in items]
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FundiffError(f"cannot read --auth-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        lines = [(f"{path} line {i}", line.strip()) for i, line in enumerate(text.splitlines(), 1)]
        entries += [(where, line) for where, line in lines if line and not line.startswith("#")]
        if not any(where != "--auth" for where, _ in entries):
            raise FundiffError(f"--auth-file {path} holds no USER:PASSWORD line")
    logins = []
    for where, item in entries:
        user, sep, password = item.partition(":")
        if not sep or not user.strip() or not password:
            raise FundiffError(f"{where}: expected USER:PASSWORD with both parts non-empty")
        logins.append((user.strip(), password))
    return logins


def check_access(host: str, logins: list[tuple[str, str]], no_auth: bool) -> None:
    """A UI reachable from other computers needs a login, or an explicit ``--no-auth``."""
    if logins and no_auth:
        raise FundiffError("give --auth / --auth-file or --no-auth, not both")
    if not is_loopback(host) and not logins and not no_auth:
        raise FundiffError(f"--host {host} exposes the UI beyond this computer: require a login with --auth USER:PASSWORD "
                           "or --auth-file FILE, or pass --no-auth to serve it without one")


def cmd_serve(args) -> int:
    logins = parse_logins(args.auth, args.auth_file)
    check_access(args.host, logins, args.no_auth)
    check_port(args.host, args.port)
    if importlib.util.find_spec("gradio") is None:
        raise FundiffError("fundiff serve needs gradio: pip install 'fundiff[web]'")
    from fundiff.web.app import serve

    if not is_loopback(args.host) and not logins:
        print(f"fundiff serve: warning: listening on {args.host} with --no-auth: anyone who can reach this "
              f"computer on port {args.port} can use the UI", file=sys.stderr)
    device = None if args.device == "auto" else args.device
    print(f"fundiff serve: loading the {args.model} model...", file=sys.stderr, flush=True)
    serve(args.host, args.port, model=args.model, max_queue=args.max_queue, concurrency=args.concurrency,
          quiet=args.quiet, logins=logins, threshold=args.threshold, seed=args.seed,
          weights=args.weights, embeddings=args.embeddings, device=device, dtype=args.dtype,
          cpu_offload=args.cpu_offload, text_encoder=args.text_encoder, download=args.download, max_batch=args.max_batch,
          precision=args.precision)
    return 0
