"""The ``mianzhang`` command (typer): the top floor, over the server, the client and the
features. ``main`` is the console script (``mianzhang = "mianzhang.cli:main"``) and what
``python -m mianzhang`` runs.

One module per command group:

=================  =====================================================================
``_app.py``         the root command, where every subcommand is registered; ``main``
``_common.py``      ``--url`` / ``--api-key``, shared by the commands that call a server
``_serve.py``       ``serve``: the server under uvicorn
``_chat.py``        ``chat``: a generation streamed to the terminal
``_channels.py``    ``publish`` and ``subscribe``: channel events
``_worker.py``      ``worker``: jobs from the Redis queue
=================  =====================================================================
"""

from ._app import app, main

__all__ = ["app", "main"]
