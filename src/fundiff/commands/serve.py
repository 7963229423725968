"""``fundiff serve``: the local web UI (gradio) over one model, loaded once.

Listens on 127.0.0.1 (this computer only) unless ``--host`` says otherwise; jobs go through a queue
and run ``--concurrency`` at a time (default 1: in order of arrival).
"""

from __future__ import annotations

import ipaddress
import socket
import sys

from fundiff.commands.arguments import add_backend_args, positive_int
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

    def port(text: str) -> int:
        value = positive_int(text)
        if value > 65535:
            import argparse

            raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text}")
        return value

    p = sub.add_parser(
        "serve", help="a local web UI: generate, SDEdit (upload or draw), inpaint, anagrams, hybrids",
        description="Serve a web UI (gradio; needs pip install 'fundiff[web]') over one model, loaded once: tabs for "
                    "generation, SDEdit from an uploaded image or a drawing, inpainting with a painted mask, visual "
                    "anagrams with their animation, and hybrid images. Listens on 127.0.0.1 (this computer only) "
                    "by default; jobs queue and run one at a time, in order, with a progress bar.")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this computer only; 0.0.0.0 exposes the UI "
                        "to your network, without a password)")
    p.add_argument("--port", type=port, default=7860, help="port (default 7860)")
    p.add_argument("--max-queue", type=positive_int, default=16, help="jobs that may wait in the queue (default 16)")
    p.add_argument("--concurrency", type=positive_int, default=1,
                   help="jobs run at once (default 1: one at a time, in order of arrival)")
    p.add_argument("--quiet", action="store_true", help="do not print gradio's start-up messages")
    add_backend_args(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    check_port(args.host, args.port)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FundiffError("fundiff serve needs gradio: pip install 'fundiff[web]'") from None
    from fundiff.web.app import serve

    if not is_loopback(args.host):
        print(f"fundiff serve: warning: listening on {args.host}, not loopback: anyone who can reach this "
              f"computer on port {args.port} can use the UI (there is no password)", file=sys.stderr)
    device = None if args.device == "auto" else args.device
    print(f"fundiff serve: loading the {args.model} model...", file=sys.stderr, flush=True)
    serve(args.host, args.port, model=args.model, max_queue=args.max_queue, concurrency=args.concurrency,
          quiet=args.quiet, threshold=args.threshold, seed=args.seed,
          weights=args.weights, embeddings=args.embeddings, device=device, dtype=args.dtype,
          cpu_offload=args.cpu_offload, text_encoder=args.text_encoder, download=args.download)
    return 0
