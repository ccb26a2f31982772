"""The team's notes and decisions for post-deployment reports.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_report_notes_model_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_report_notes"),
    )
    op.create_index("ix_report_notes_model_id", "report_notes", ["model_id"])
    op.create_table(
        "report_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("preference", sa.String(length=100), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("cost", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_report_decisions_model_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_report_decisions"),
    )
    op.create_index(
        "ix_report_decisions_model_id_preference", "report_decisions", ["model_id", "preference"]
    )


def downgrade() -> None:
    op.drop_index("ix_report_decisions_model_id_preference", table_name="report_decisions")
    op.drop_table("report_decisions")
    op.drop_index("ix_report_notes_model_id", table_name="report_notes")
    op.drop_table("report_notes")
