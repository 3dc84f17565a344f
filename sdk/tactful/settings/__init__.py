"""Each user's own personalization settings, stored encrypted, with their history."""

from tactful.settings.effects import discover, pool_size
from tactful.settings.model import Settings
from tactful.settings.store import SettingsStore

__all__ = ["Settings", "SettingsStore", "discover", "pool_size"]
