"""The event log's last verified checkpoint (a signed line, trusted only when its signature
and the chain agree), and a claim token per draft so that a stale writer changes nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_chain_verified",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_chain_verified"),
    )
    with op.batch_alter_table("corner_drafts") as batch:
        batch.add_column(sa.Column("claim", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("corner_drafts") as batch:
        batch.drop_column("claim")
    op.drop_table("event_chain_verified")
