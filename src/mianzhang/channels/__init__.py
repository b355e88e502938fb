"""Live notification channels on the event log (layer 4)."""

from ._hub import ChannelHub, Published, channel_stream, check_channel_name
from ._settings import ChannelsSettings

__all__ = [
    "ChannelHub",
    "ChannelsSettings",
    "Published",
    "channel_stream",
    "check_channel_name",
]
