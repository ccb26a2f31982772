"""Refusals counted per minute and reason, not logged one by one (issue 14).

The refusals logged one by one before (`access.denied` events) are counted into the new table as
already logged (`event_seq`: the newest event of their minute and reason), so the console's
totals keep them; what they named (key ids, models: anyone's guesses) is not carried over.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

import json
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_denials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint("count > 0", name="ck_access_denials_count"),
        sa.PrimaryKeyConstraint("id", name="pk_access_denials"),
    )
    op.create_index("ix_access_denials_minute_reason", "access_denials", ["minute", "reason"])
    op.create_index("ix_access_denials_event_seq_minute", "access_denials", ["event_seq", "minute"])

    _count_logged_refusals()


def _count_logged_refusals() -> None:
    bind = op.get_bind()
    found: dict[tuple[int, str], list[int]] = {}  # (minute, reason) -> [status, count, seq]
    rows = bind.execute(
        sa.text("SELECT seq, payload FROM events WHERE kind = 'access.denied' ORDER BY seq")
    )
    for seq, payload in rows:
        fields = json.loads(payload)
        at = datetime.fromisoformat(str(fields["time"]).replace("Z", "+00:00"))
        key = (int(at.timestamp()) // 60 * 60, str(fields["reason"])[:32])
        entry = found.setdefault(key, [int(fields["status"]), 0, seq])
        entry[1] += 1
        entry[2] = seq
    if found:
        bind.execute(
            sa.text(
                "INSERT INTO access_denials (minute, reason, status, count, detail, event_seq) "
                "VALUES (:minute, :reason, :status, :count, :detail, :seq)"
            ),
            [
                {
                    "minute": minute,
                    "reason": reason,
                    "status": status,
                    "count": count,
                    "detail": '{"keys":{},"models":{}}',
                    "seq": seq,
                }
                for (minute, reason), (status, count, seq) in sorted(found.items())
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_access_denials_event_seq_minute", table_name="access_denials")
    op.drop_index("ix_access_denials_minute_reason", table_name="access_denials")
    op.drop_table("access_denials")
