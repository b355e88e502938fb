"""A drop-in for ``sse_starlette`` (sse-starlette 3.7.1) on mianzhang's response engine.

The same module layout (``sse_starlette``, ``.sse``, ``.event``) and every public name of
3.7.1, so code written for sse-starlette runs unchanged, either by changing its imports::

    from mianzhang.compat.sse_starlette import EventSourceResponse, ServerSentEvent

or, for code you cannot edit (a dependency such as the ``mcp`` SDK), by aliasing the package
before that code is imported: ``mianzhang.compat.install()``.

Matched version: sse-starlette 3.7.1 (``__version__`` says so, for code that checks it).
"""

from .event import JSONServerSentEvent, ServerSentEvent
from .sse import EventSourceResponse

__all__ = ["EventSourceResponse", "JSONServerSentEvent", "ServerSentEvent"]
__version__ = "3.7.1"
