"""Layer 5: the mianzhang server (``create_app``) and its settings."""

from ._app import create_app
from ._services import Services
from ._settings import Settings, load_settings

__all__ = ["Services", "Settings", "create_app", "load_settings"]
