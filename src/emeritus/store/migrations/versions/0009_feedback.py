"""Users' ratings of responses the gateway served.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_access_feedback_principal_id_access_principals",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_access_feedback_model_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_feedback"),
        sa.UniqueConstraint("request_id", name="uq_access_feedback_request_id"),
    )
    op.create_index("ix_access_feedback_model_id_time", "access_feedback", ["model_id", "time"])


def downgrade() -> None:
    op.drop_index("ix_access_feedback_model_id_time", table_name="access_feedback")
    op.drop_table("access_feedback")
