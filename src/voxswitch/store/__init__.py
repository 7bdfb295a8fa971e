"""Persistence: SQLAlchemy models, the database handle and Alembic migrations."""

from voxswitch.store.database import Database, normalise_url
from voxswitch.store.migrate import upgrade

__all__ = ["Database", "normalise_url", "upgrade"]
