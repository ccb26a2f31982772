"""Console invitations (an operator's one-time code that binds an account to an existing
principal) and sign-in throttles (failures per account name and per client address).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=71), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_access_invitations_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_invitations"),
        sa.UniqueConstraint("code_hash", name="uq_access_invitations_code_hash"),
    )
    op.create_index("ix_access_invitations_principal_id", "access_invitations", ["principal_id"])
    op.create_table(
        "access_sign_in_throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_access_sign_in_throttles"),
        sa.UniqueConstraint("key", name="uq_access_sign_in_throttles_key"),
    )
    op.create_index(
        "ix_access_sign_in_throttles_last_failure_at",
        "access_sign_in_throttles",
        ["last_failure_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_access_sign_in_throttles_last_failure_at", table_name="access_sign_in_throttles"
    )
    op.drop_table("access_sign_in_throttles")
    op.drop_index("ix_access_invitations_principal_id", table_name="access_invitations")
    op.drop_table("access_invitations")
