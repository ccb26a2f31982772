"""A revoked grant blocks new applications for its principal and model until an operator resets
the revocation: when that happened is kept on the grant.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_grants") as batch:
        batch.add_column(sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_grants") as batch:
        batch.drop_column("reset_at")
