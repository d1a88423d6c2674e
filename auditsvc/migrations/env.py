from auditsvc.models import metadata
from gatehouse.infra import alembic_env

alembic_env.run(metadata)
