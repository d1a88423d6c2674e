"""known_login_places and held_logins: new-device confirmation (accounts/newdevice.py)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('known_login_places',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_known_login_places_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_known_login_places')),
    sa.UniqueConstraint('user_id', 'kind', 'value', name=op.f('uq_known_login_places_user_id_kind_value'))
    )
    op.create_table('held_logins',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('link_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('browser_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_held_logins_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_logins')),
    sa.UniqueConstraint('link_hash', name=op.f('uq_held_logins_link_hash'))
    )
    with op.batch_alter_table('held_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_logins_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('held_logins')
    op.drop_table('known_login_places')
