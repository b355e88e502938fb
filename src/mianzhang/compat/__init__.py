"""Drop-ins for the SSE libraries other code is written against, on mianzhang's engine.

* :mod:`mianzhang.compat.sse_starlette`: sse-starlette 3.7.1 (``sse_starlette``, ``.sse``,
  ``.event``), every public name and argument;
* :mod:`mianzhang.compat.fastapi_sse`: FastAPI's ``fastapi.sse``;
* :mod:`mianzhang.compat.mcp`: an ``EventStore`` for the ``mcp`` SDK's streamable HTTP
  transport on mianzhang's event log (imported on its own: it needs ``mcp``).

Change your imports to use them, or let code you cannot edit (a dependency) find them under
the original names with :func:`install`, called before that code is imported::

    import mianzhang.compat
    mianzhang.compat.install()          # now `import sse_starlette` is mianzhang's
    from mcp.server.mcpserver import MCPServer

This package sits at layer 4: it uses the responses (layer 2) and, for ``mcp``, the event log
(layer 3). The departures from the libraries it replaces are listed, with their reasons, in
docs/migrating-from-sse-starlette.md.
"""

from ._install import install, installed, uninstall

__all__ = ["install", "installed", "uninstall"]
