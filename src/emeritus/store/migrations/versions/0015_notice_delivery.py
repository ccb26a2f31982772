"""Notice delivery: subscribers, the outbox (deliveries, attempts), reminders and firm dates.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(
            sa.Column("retire_firm", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("schedule_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("threshold_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fanned_out_at", _WHEN, nullable=True))
        batch.create_foreign_key(
            "fk_notices_schedule_id_notices", "notices", ["schedule_id"], ["id"]
        )
        batch.create_unique_constraint("uq_notices_schedule_id", ["schedule_id", "threshold_days"])
    # Notices written before delivery existed were already announced in the feed: not resent.
    op.execute(sa.text("UPDATE notices SET fanned_out_at = published_at"))
    op.create_table(
        "notice_subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.String(length=80), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("removed_at", _WHEN, nullable=True),
        sa.CheckConstraint("channel IN ('webhook', 'email')", name="ck_notice_subscribers_channel"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_notice_subscribers_model_id_models"
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_notice_subscribers_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notice_subscribers"),
        sa.UniqueConstraint("uid", name="uq_notice_subscribers_uid"),
    )
    op.create_table(
        "notice_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=1000), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _WHEN, nullable=False),
        sa.Column("sent_at", _WHEN, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'dead', 'unreachable')",
            name="ck_notice_deliveries_state",
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notices.id"], name="fk_notice_deliveries_notice_id_notices"
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["notice_subscribers.id"],
            name="fk_notice_deliveries_subscriber_id_notice_subscribers",
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_notice_deliveries_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notice_deliveries"),
        sa.UniqueConstraint("uid", name="uq_notice_deliveries_uid"),
        sa.UniqueConstraint("idempotency_key", name="uq_notice_deliveries_idempotency_key"),
        sa.UniqueConstraint("notice_id", "recipient", name="uq_notice_deliveries_notice_id"),
    )
    op.create_index(
        "ix_notice_deliveries_state_next_attempt_at",
        "notice_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_table(
        "notice_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("started_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('started', 'ok', 'failed', 'refused')",
            name="ck_notice_attempts_outcome",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notice_deliveries.id"],
            name="fk_notice_attempts_delivery_id_notice_deliveries",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notice_attempts"),
    )
    op.create_index("ix_notice_attempts_delivery_id", "notice_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("notice_attempts")
    op.drop_table("notice_deliveries")
    op.drop_table("notice_subscribers")
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint("uq_notices_schedule_id", type_="unique")
        batch.drop_constraint("fk_notices_schedule_id_notices", type_="foreignkey")
        batch.drop_column("fanned_out_at")
        batch.drop_column("threshold_days")
        batch.drop_column("schedule_id")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("retire_firm")
