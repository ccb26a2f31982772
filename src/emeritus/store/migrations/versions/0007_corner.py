"""The essay channel: channels and drafts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corner_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("disclaimer", sa.Text(), nullable=False),
        sa.Column("cadence", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("motivation", sa.Text(), nullable=True),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_corner_channels_model_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_corner_channels"),
    )
    op.create_index("ix_corner_channels_model_id", "corner_channels", ["model_id"])
    op.create_table(
        "corner_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=80), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("params", sa.Text(), nullable=True),
        sa.Column("backend", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("veto_category", sa.String(length=40), nullable=True),
        sa.Column("veto_reason", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["corner_channels.id"],
            name="fk_corner_drafts_channel_id_corner_channels",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_corner_drafts"),
        sa.UniqueConstraint("channel_id", "slot", name="uq_corner_drafts_channel_id_slot"),
    )
    op.create_index("ix_corner_drafts_state", "corner_drafts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_corner_drafts_state", table_name="corner_drafts")
    op.drop_table("corner_drafts")
    op.drop_index("ix_corner_channels_model_id", table_name="corner_channels")
    op.drop_table("corner_channels")
