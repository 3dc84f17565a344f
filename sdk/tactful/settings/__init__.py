"""Each user's own personalization settings, stored encrypted, with their history."""

from tactful.settings.effects import pool_size
from tactful.settings.model import Settings
from tactful.settings.store import SettingsStore

__all__ = ["Settings", "SettingsStore", "pool_size"]
