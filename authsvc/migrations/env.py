from authsvc.models import metadata
from gatehouse.infra import alembic_env

alembic_env.run(metadata)
