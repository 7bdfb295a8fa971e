"""SIP accounts (devices), registrar bindings and SIP security events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from voxswitch.store.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("realm", sa.String(200), nullable=False),
        sa.Column("ha1_md5", sa.String(32), nullable=False),
        sa.Column("ha1_sha256", sa.String(64), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_devices_user_id", "devices", ["user_id"])
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("aor", sa.String(200), nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("q", sa.Float),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("cseq", sa.Integer, nullable=False),
        sa.Column("source_host", sa.String(64), nullable=False),
        sa.Column("source_port", sa.Integer, nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_registrations_device_id", "registrations", ["device_id"])
    op.create_index("ux_registrations_aor_contact", "registrations", ["aor", "contact"], unique=True)
    op.create_table(
        "sip_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="SET NULL")),
        sa.Column("username", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_sip_events_device_id", "sip_events", ["device_id"])


def downgrade() -> None:
    op.drop_table("sip_events")
    op.drop_table("registrations")
    op.drop_table("devices")
