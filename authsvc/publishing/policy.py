"""What trusted publishing asks of uploads with long-lived API tokens (the token verifier calls
this once the upload's project and role are checked): a project set to "trusted publishing only"
refuses them; a project with a publisher lets them through and tells its Owners (notices.py)."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.errors import TokenDenied
from authsvc.projects.models import Project
from authsvc.publishing.models import Publisher
from authsvc.publishing.notices import OwnerNotices


async def has_publisher(s: AsyncSession, project_id: str) -> bool:
    """Whether the project has a trusted publisher (the tokens area's bulk revocation asks)."""
    return bool(await s.scalar(select(exists().where(Publisher.project_id == project_id))))


class LongLivedTokenPolicy:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], notices: OwnerNotices | None) -> None:
        self.db = db
        self.notices = notices

    async def check_upload(self, *, project_id: str, project_name: str, token_id: str, username: str) -> None:
        """Raise TokenDenied when the project takes uploads from its trusted publishers only."""
        async with self.db() as s:
            found = (await s.execute(select(Project.trusted_publishing_only,
                                            exists().where(Publisher.project_id == Project.id))
                                     .where(Project.id == project_id))).first()
        if found is None:
            return  # deleted meanwhile: the upload's own checks refuse it
        only, has_publisher = found
        if only:
            raise TokenDenied(f"'{project_name}' accepts uploads only from its trusted publishers (its CI "
                              "workflows), not with API tokens. Publish from the CI workflow, or ask an Owner to "
                              "turn off \"trusted publishing only\".", reason="trusted_publishing_only")
        if has_publisher and self.notices is not None:
            self.notices.long_lived_upload(project_id, project_name, uploader=username, token_id=token_id)
