"""``mianzhang.compat.install()``: ``import sse_starlette`` (every module of it) and, when asked,
``fastapi.sse`` resolve to the drop-ins in a fresh process; uvicorn is never patched; installing
after the real package was imported is refused; ``uninstall()`` puts things back.

Each case runs in its own interpreter (this one has imported the real sse_starlette)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests._support.procs import ROOT, _env


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )


def check(code: str) -> str:
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_import_form_resolves_to_the_drop_in_and_uvicorn_is_untouched() -> None:
    out = check(
        """
        import mianzhang.compat
        mianzhang.compat.install()
        import sse_starlette, sse_starlette.sse, sse_starlette.event
        from sse_starlette import EventSourceResponse, ServerSentEvent, JSONServerSentEvent
        from sse_starlette.sse import AppStatus, SendTimeoutError, ensure_bytes
        from sse_starlette.event import ensure_bytes as ensure_bytes_too
        import mianzhang.compat.sse_starlette as ours
        assert sse_starlette is ours and sse_starlette.sse is ours.sse
        assert sse_starlette.event is ours.event and ensure_bytes is ensure_bytes_too
        assert EventSourceResponse is ours.sse.EventSourceResponse
        assert sse_starlette.__version__ == "3.7.1"
        import mcp.server.streamable_http, mcp.server.sse
        assert mcp.server.streamable_http.EventSourceResponse is EventSourceResponse
        assert mcp.server.sse.EventSourceResponse is EventSourceResponse
        import uvicorn.server
        assert uvicorn.server.Server.handle_exit.__module__ == "uvicorn.server"
        assert mianzhang.compat.installed()
        mianzhang.compat.install()  # idempotent
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_without_install_the_real_package_patches_uvicorn() -> None:
    out = check(
        """
        import sse_starlette, uvicorn.server
        print(sse_starlette.__file__.endswith("sse_starlette/__init__.py"))
        print(uvicorn.server.Server.handle_exit.__qualname__)
        """
    )
    assert out.split() == ["True", "AppStatus.handle_exit"]


def test_installing_after_the_real_import_is_refused() -> None:
    done = run_python(
        """
        import sse_starlette
        import mianzhang.compat
        mianzhang.compat.install()
        """
    )
    assert done.returncode != 0
    assert "ConfigError" in done.stderr and "before anything imports it" in done.stderr


def test_uninstall_restores_the_real_package() -> None:
    out = check(
        """
        import mianzhang.compat
        mianzhang.compat.install()
        import sse_starlette
        assert sse_starlette.__name__ == "mianzhang.compat.sse_starlette"
        mianzhang.compat.uninstall()
        assert not mianzhang.compat.installed()
        import sse_starlette
        print(sse_starlette.__name__, sse_starlette.__file__.endswith("sse_starlette/__init__.py"))
        """
    )
    assert out.split() == ["sse_starlette", "True"]


def test_fastapi_sse_resolves_to_the_drop_in_while_fastapi_keeps_its_own() -> None:
    out = check(
        """
        import mianzhang.compat
        mianzhang.compat.install(fastapi_sse=True)
        import fastapi, fastapi.routing
        from fastapi.sse import EventSourceResponse, ServerSentEvent
        from fastapi.testclient import TestClient
        import mianzhang.compat.fastapi_sse as ours
        assert EventSourceResponse is ours.EventSourceResponse and fastapi.sse is ours
        assert fastapi.routing.EventSourceResponse.__module__ == "fastapi.sse"  # FastAPI's own
        assert ServerSentEvent is fastapi.routing.ServerSentEvent  # the same model class

        app = fastapi.FastAPI()

        @app.get("/stream", response_class=EventSourceResponse)
        async def stream():
            yield ServerSentEvent(data={"n": 1}, event="tick")
            raise RuntimeError("after the headers")

        with TestClient(app) as client:
            body = client.get("/stream").text
        print(repr(body))
        mianzhang.compat.uninstall()
        import fastapi.sse
        assert fastapi.sse.EventSourceResponse is fastapi.routing.EventSourceResponse
        """
    )
    assert 'event: tick\\ndata: {"n": 1}\\n\\n' in out
    assert "event: error" in out  # mianzhang's engine ran the route
