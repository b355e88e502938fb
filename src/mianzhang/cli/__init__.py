"""The ``mianzhang`` command (typer): the top floor, over the server, the client and the
features. ``main`` is the console script (``mianzhang = "mianzhang.cli:main"``) and what
``python -m mianzhang`` runs.

One module per command group:

==================  ====================================================================
``_app.py``          the root command (``--version``), every subcommand registered; ``main``
``_help.py``         command classes whose help names values by meaning, not by type
``_common.py``       ``--url`` / ``--api-key`` and error messages, shared by client commands
``_serve.py``        ``serve``: the server under uvicorn
``_chat.py``         ``chat``: a generation streamed to the terminal
``_channels.py``     ``publish`` and ``subscribe``: channel events
``_tail.py``         ``tail``: a server-side file followed like ``tail -f``
``_jobs.py``         ``jobs submit|watch|cancel|list``
``_jobs_watch.py``   following a job's events to its end, resumable across runs
``_jobs_view.py``    jobs for people: progress bar or lines, results as fields, the table
``_worker.py``       ``worker``: jobs from the Redis queue
==================  ====================================================================
"""

from ._app import app, main

__all__ = ["app", "main"]
