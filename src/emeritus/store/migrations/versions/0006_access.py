"""Access control: principals, policies, applications, grants, API keys, usage.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_principals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_principals"),
        sa.UniqueConstraint("name", name="uq_access_principals_name"),
    )
    op.create_table(
        "access_applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'rejected')", name="ck_access_applications_state"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_access_applications_model_id_models"
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_access_applications_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_applications"),
        sa.UniqueConstraint("uid", name="uq_access_applications_uid"),
    )
    op.create_index(
        "ix_access_applications_principal_model",
        "access_applications",
        ["principal_id", "model_id"],
    )
    op.create_table(
        "access_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=71), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_access_keys_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_keys"),
        sa.UniqueConstraint("key_id", name="uq_access_keys_key_id"),
    )
    op.create_index("ix_access_keys_principal_id", "access_keys", ["principal_id"])
    op.create_table(
        "access_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("approval", sa.String(length=8), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("approval IN ('auto', 'manual')", name="ck_access_policies_approval"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_access_policies_model_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_policies"),
        sa.UniqueConstraint("model_id", name="uq_access_policies_model_id"),
    )
    op.create_table(
        "access_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_quota", sa.BigInteger(), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_tokens", sa.BigInteger(), nullable=False),
        sa.Column("minute_start", sa.BigInteger(), nullable=False),
        sa.Column("minute_requests", sa.Integer(), nullable=False),
        sa.CheckConstraint("period_s > 0", name="ck_access_grants_period_s"),
        sa.CheckConstraint("requests_per_minute > 0", name="ck_access_grants_requests_per_minute"),
        sa.CheckConstraint("token_quota > 0", name="ck_access_grants_token_quota"),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["access_applications.id"],
            name="fk_access_grants_application_id_access_applications",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_access_grants_model_id_models"
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_access_grants_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_grants"),
        sa.UniqueConstraint("uid", name="uq_access_grants_uid"),
    )
    op.create_index(
        "ix_access_grants_principal_model", "access_grants", ["principal_id", "model_id"]
    )
    op.create_table(
        "access_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["access_grants.id"], name="fk_access_usage_grant_id_access_grants"
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["access_keys.id"], name="fk_access_usage_key_id_access_keys"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_access_usage_model_id_models"
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["access_principals.id"],
            name="fk_access_usage_principal_id_access_principals",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_usage"),
        sa.UniqueConstraint("request_id", name="uq_access_usage_request_id"),
    )
    op.create_index("ix_access_usage_model_id_time", "access_usage", ["model_id", "time"])
    op.create_index("ix_access_usage_principal_id_time", "access_usage", ["principal_id", "time"])


def downgrade() -> None:
    op.drop_table("access_usage")
    op.drop_table("access_grants")
    op.drop_table("access_policies")
    op.drop_table("access_keys")
    op.drop_table("access_applications")
    op.drop_table("access_principals")
