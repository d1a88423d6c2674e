from gatehouse.infra import alembic_env
from uploadgw.models import metadata

alembic_env.run(metadata)
