"""Facts about a model's deployment and use.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_facts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_model_facts_model_id_models"),
        sa.PrimaryKeyConstraint("id", name="pk_model_facts"),
        sa.UniqueConstraint("model_id", name="uq_model_facts_model_id"),
    )


def downgrade() -> None:
    op.drop_table("model_facts")
