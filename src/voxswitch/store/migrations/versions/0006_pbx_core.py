"""The PBX's core tables: DIDs, their routes, the blocklist; do-not-disturb on devices; recordings
that know their kind (a call, a voicemail, a greeting), DID and caller.

Revision ID: 0006
Revises: 0004 (0005 is the voice-call API's jobs; see its file)
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from voxswitch.store.models import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dids",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("phone_number", sa.String(32), nullable=False, unique=True),
        sa.Column("friendly_name", sa.String(200), nullable=False),
        sa.Column("capabilities", sa.JSON, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("provider_sid", sa.String(64), unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("did_id", sa.Integer, sa.ForeignKey("dids.id", ondelete="CASCADE"), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("conditions", sa.JSON, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("action_data", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_routes_did_id", "routes", ["did_id"])
    op.create_table(
        "blocklist",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("phone_number", sa.String(32), nullable=False, unique=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("dnd", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="call"))
        batch.add_column(
            sa.Column("did_id", sa.Integer, sa.ForeignKey("dids.id", name="fk_recordings_did_id", ondelete="SET NULL"))
        )
        batch.add_column(sa.Column("caller", sa.String(64)))
        batch.create_index("ix_recordings_did_id", ["did_id"])


def downgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.drop_index("ix_recordings_did_id")
        batch.drop_column("caller")
        batch.drop_column("did_id")
        batch.drop_column("kind")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("dnd")
    op.drop_table("blocklist")
    op.drop_table("routes")
    op.drop_table("dids")
