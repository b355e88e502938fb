"""Layer 5: the mianzhang server (``create_app``), its settings, its uvicorn protocol
(``uvicorn app:app --http mianzhang.server:HttpProtocol``) and its uvicorn server for any app
(:func:`run`, ``mianzhang run module:app``)."""

from ._app import create_app
from ._http_protocol import HttpProtocol
from ._services import Services
from ._settings import Settings, load_settings
from ._uvicorn import run

__all__ = ["HttpProtocol", "Services", "Settings", "create_app", "load_settings", "run"]
