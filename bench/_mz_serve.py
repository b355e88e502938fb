"""A peer app under mianzhang's server (``mianzhang.server.run``, what ``mianzhang run`` and
``mianzhang serve`` run) instead of plain uvicorn: its protocol (configured from
``MIANZHANG_*``: limits, the transport extension) and its batched acceptor
(``MIANZHANG_ACCEPT_BATCH``).

    python -m bench._mz_serve bench._sse_peer_apps:app --host 127.0.0.1 --port 8000 [uvicorn flags]

Takes the command line of ``python -m uvicorn`` (``tests/_support/procs.uvicorn_command``);
of uvicorn's flags it reads ``--timeout-graceful-shutdown`` and ignores the others (the loop is
uvloop, the lifespan off, the backlog 4096, warnings only).
"""

from __future__ import annotations

import argparse

from mianzhang.server import run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None)
    args, _uvicorn_flags = parser.parse_known_args()
    run(
        args.app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        lifespan="off",
        backlog=4096,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        limit_concurrency=None,  # as plain uvicorn: no connection cap
    )


if __name__ == "__main__":
    main()
