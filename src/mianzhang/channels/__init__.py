"""Live notification channels on the event log (layer 4)."""

from ._hub import ChannelHub, Published, channel_stream, check_channel_name

__all__ = ["ChannelHub", "Published", "channel_stream", "check_channel_name"]
