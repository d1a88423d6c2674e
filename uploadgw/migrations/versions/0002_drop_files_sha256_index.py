"""drop files.sha256's index: no query reads it, and every upload wrote it

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_files_sha256", table_name="files")


def downgrade() -> None:
    op.create_index("ix_files_sha256", "files", ["sha256"], unique=False)
