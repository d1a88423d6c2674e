"""rate_limit_counters: one row per rate-limit key, counted and tested in one atomic upsert

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
    )
    op.create_index(op.f("ix_rate_limit_counters_window_end"), "rate_limit_counters", ["window_end"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_limit_counters_window_end"), table_name="rate_limit_counters")
    op.drop_table("rate_limit_counters")
