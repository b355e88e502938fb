"""Layer 5: the mianzhang server (``create_app``), its settings, and its uvicorn protocol
(``uvicorn app:app --http mianzhang.server:HttpProtocol``)."""

from ._app import create_app
from ._http_protocol import HttpProtocol
from ._services import Services
from ._settings import Settings, load_settings

__all__ = ["HttpProtocol", "Services", "Settings", "create_app", "load_settings"]
