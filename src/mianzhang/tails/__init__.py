"""Live tail of allow-listed files, served as resumable event streams (layer 4)."""

from ._serve import tail_events
from ._settings import TailsSettings
from ._tail import FileTail

__all__ = ["FileTail", "TailsSettings", "tail_events"]
