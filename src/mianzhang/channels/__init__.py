"""Live notification channels on the event log (layer 4).

In process, a :class:`ChannelHub` publishes and subscribes directly on the app's log;
:func:`publish` / :func:`publish_sync` publish to a remote server over HTTP. Subscribing
remotely is ``mianzhang.client.connect(f"{url}/v1/channels/{name}/events")``.
"""

from ._hub import ChannelHub, Published, channel_stream, check_channel_name
from ._remote import publish, publish_sync
from ._settings import ChannelsSettings

__all__ = [
    "ChannelHub",
    "ChannelsSettings",
    "Published",
    "channel_stream",
    "check_channel_name",
    "publish",
    "publish_sync",
]
