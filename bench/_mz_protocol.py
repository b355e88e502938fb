"""``mianzhang serve``'s uvicorn protocol, configured from the environment (``MIANZHANG_*``), for
benches that run a peer app under plain uvicorn: ``--http bench._mz_protocol:Protocol``."""

from mianzhang.server._http_protocol import guarded_protocol
from mianzhang.server._settings import Settings

Protocol = guarded_protocol(Settings())
