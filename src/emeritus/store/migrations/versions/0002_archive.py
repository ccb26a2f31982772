"""The preservation archive: copies, objects, versions, copy states.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "archive_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_archive_copies"),
        sa.UniqueConstraint("name", name="uq_archive_copies_name"),
        sa.UniqueConstraint("url", name="uq_archive_copies_url"),
    )
    op.create_table(
        "archive_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("object_id", sa.String(200), nullable=False),
        sa.Column("head", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_archive_objects"),
        sa.UniqueConstraint("model", name="uq_archive_objects_model"),
        sa.UniqueConstraint("object_id", name="uq_archive_objects_object_id"),
    )
    op.create_table(
        "archive_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("inventory_sha512", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["archive_objects.id"],
            name="fk_archive_versions_object_id_archive_objects",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_archive_versions"),
        sa.UniqueConstraint("object_id", "number", name="uq_archive_versions_number"),
    )
    op.create_index("ix_archive_versions_object_id", "archive_versions", ["object_id"])
    op.create_table(
        "archive_copy_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("copy_id", sa.Integer(), nullable=False),
        sa.Column("head", sa.Integer(), nullable=True),
        _time("replicated_at", True),
        _time("last_check_at", True),
        sa.Column("last_check_ok", sa.Boolean(), nullable=True),
        _time("last_full_check_at", True),
        sa.Column("last_full_check_ok", sa.Boolean(), nullable=True),
        sa.Column("last_problem", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["archive_objects.id"],
            name="fk_archive_copy_states_object_id_archive_objects",
        ),
        sa.ForeignKeyConstraint(
            ["copy_id"], ["archive_copies.id"], name="fk_archive_copy_states_copy_id_archive_copies"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_archive_copy_states"),
        sa.UniqueConstraint("object_id", "copy_id", name="uq_archive_copy_states_pair"),
    )
    op.create_index("ix_archive_copy_states_object_id", "archive_copy_states", ["object_id"])
    op.create_index("ix_archive_copy_states_copy_id", "archive_copy_states", ["copy_id"])


def downgrade() -> None:
    op.drop_table("archive_copy_states")
    op.drop_table("archive_versions")
    op.drop_table("archive_objects")
    op.drop_table("archive_copies")
