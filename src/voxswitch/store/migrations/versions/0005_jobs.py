"""Durable jobs (the voice-call API's queued calls) and the webhook deliveries they owe.

A job row is the call request itself: it is inserted in the request's transaction, so an accepted
call is never lost. `owner` and `lease_until` are a worker's claim on it (jobs/states.py explains
the states); `webhook_deliveries` are StatusCallback POSTs, written in the same transaction as the
state they report, and retried until delivered.

Revision ID: 0005
Revises: 0006 (the PBX's tables landed first as 0006 on top of 0004; this one follows it so the
history stays one line, and a database already at 0006 upgrades by adding these two tables)
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False, unique=True),
        sa.Column("batch_id", sa.String(36)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", ts, nullable=False),
        sa.Column("owner", sa.String(120)),
        sa.Column("lease_until", ts),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("to_number", sa.String(64), nullable=False, server_default=""),
        sa.Column("from_number", sa.String(64), nullable=False, server_default=""),
        sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("started_at", ts),
        sa.Column("dialed_at", ts),
        sa.Column("answered_at", ts),
        sa.Column("completed_at", ts),
        sa.Column("duration", sa.Float),
        sa.Column("error_message", sa.Text),
        sa.Column("sip_status", sa.Integer),
        sa.Column("attempt_call_id", sa.String(36)),
    )
    op.create_index("ix_jobs_claim", "jobs", ["kind", "state", "not_before"])
    op.create_index("ix_jobs_owner", "jobs", ["owner"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_completed_at", "jobs", ["completed_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", ts, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("delivered_at", ts),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_job", "webhook_deliveries", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("jobs")
