"""``python -m mianzhang``: the same as the ``mianzhang`` command."""

from .cli import main

main()
