"""Call details the engine now knows: the app that ran, who answered, the SIP status that ended
the call, its estimated MOS, and the DID and route the PBX chose (filled from issue #6 on).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("app", sa.String(64)))
        batch.add_column(sa.Column("answered_by", sa.String(64)))
        batch.add_column(sa.Column("hangup_status", sa.Integer))
        batch.add_column(sa.Column("mos", sa.Float))
        batch.add_column(sa.Column("did", sa.String(32)))
        batch.add_column(sa.Column("route_id", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        for column in ("route_id", "did", "mos", "hangup_status", "answered_by", "app"):
            batch.drop_column(column)
