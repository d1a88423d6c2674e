"""Passkeys: security keys marked discoverable, the challenges of passwordless logins, how each
session was authenticated, and projects that accept only phishing-resistant logins

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webauthn_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discoverable", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_method", sa.String(length=16), nullable=False, server_default=""))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phishing_resistant_only", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "passkey_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("challenge_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_challenges")),
        sa.UniqueConstraint("challenge_hash", name=op.f("uq_passkey_challenges_challenge_hash")),
    )
    op.create_index(op.f("ix_passkey_challenges_expires_at"), "passkey_challenges", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_passkey_challenges_expires_at"), table_name="passkey_challenges")
    op.drop_table("passkey_challenges")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("phishing_resistant_only")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("auth_method")
    with op.batch_alter_table("webauthn_credentials", schema=None) as batch_op:
        batch_op.drop_column("discoverable")
