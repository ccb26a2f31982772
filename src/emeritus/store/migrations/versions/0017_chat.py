"""The console's chat: conversations and their messages; usage without a key; invitations
that set a tier.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("access_usage") as batch:
        batch.alter_column("key_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("access_invitations") as batch:
        batch.add_column(sa.Column("tier", sa.String(length=32), nullable=True))
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("deleted_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["access_accounts.id"],
            name="fk_chat_conversations_account_id_access_accounts",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_chat_conversations_model_id_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chat_conversations"),
        sa.UniqueConstraint("uid", name="uq_chat_conversations_uid"),
    )
    op.create_index("ix_chat_conversations_account_id", "chat_conversations", ["account_id"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_chat_messages_role"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name="fk_chat_messages_conversation_id_chat_conversations",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chat_messages"),
    )
    op.create_index("ix_chat_messages_conversation_id", "chat_messages", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("chat_messages")
    op.drop_table("chat_conversations")
    with op.batch_alter_table("access_invitations") as batch:
        batch.drop_column("tier")
    with op.batch_alter_table("access_usage") as batch:
        batch.alter_column("key_id", existing_type=sa.Integer(), nullable=False)
