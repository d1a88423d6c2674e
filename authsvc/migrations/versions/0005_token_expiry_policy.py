"""api_tokens: every token expires; restrictions chosen at creation; the expiry sweep's claims

Tokens that had no expiry get the default lifetime (90 days) from the upgrade on, so that none is
locked out at once: each one's owner is mailed a week before it ends, like any other token's
(tokens/expiry.py), and the token page shows the date from now on.

Revision ID: 0005
Revises: 0004
"""
import datetime as dt

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT_LIFETIME = dt.timedelta(days=90)  # AUTHSVC_TOKEN_DEFAULT_DAYS's default


def upgrade() -> None:
    tokens = sa.table("api_tokens", sa.column("expires_at", sa.DateTime(timezone=True)))
    until = (dt.datetime.now(dt.timezone.utc) + DEFAULT_LIFETIME).replace(microsecond=0)
    op.execute(tokens.update().where(tokens.c.expires_at.is_(None)).values(expires_at=until))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.add_column(sa.Column("allowed_networks", sa.String(length=1000), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("release_version", sa.String(length=100), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("expiry_notice_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("expired_recorded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_api_tokens_expires_at", ["expires_at"], unique=False)
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("allowed_networks", existing_type=sa.String(length=1000), server_default=None)
        batch_op.alter_column("release_version", existing_type=sa.String(length=100), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_api_tokens_expires_at")
        batch_op.drop_column("expired_recorded_at")
        batch_op.drop_column("expiry_notice_at")
        batch_op.drop_column("release_version")
        batch_op.drop_column("allowed_networks")
        batch_op.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=True)
