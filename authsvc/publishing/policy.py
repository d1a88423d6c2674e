"""What trusted publishing asks of uploads with long-lived API tokens (the token verifier calls
this once the upload's project and role are checked, with the project's setting and whether it has
a publisher, both read by the token lookup itself: no query of its own): a project set to "trusted
publishing only" refuses them; a project with a publisher lets them through and tells its Owners
(notices.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.errors import TokenDenied
from authsvc.publishing.models import has_publisher_clause
from authsvc.publishing.notices import OwnerNotices


async def has_publisher(s: AsyncSession, project_id: str) -> bool:
    """Whether the project has a trusted publisher (the tokens area's bulk revocation asks)."""
    return bool(await s.scalar(select(has_publisher_clause(project_id))))


class LongLivedTokenPolicy:
    def __init__(self, *, notices: OwnerNotices | None) -> None:
        self.notices = notices

    def check_upload(self, *, trusted_publishing_only: bool, has_publisher: bool, project_id: str,
                     project_name: str, token_id: str, username: str) -> None:
        """Raise TokenDenied when the project takes uploads from its trusted publishers only."""
        if trusted_publishing_only:
            raise TokenDenied(f"'{project_name}' accepts uploads only from its trusted publishers (its CI "
                              "workflows), not with API tokens. Publish from the CI workflow, or ask an Owner to "
                              "turn off \"trusted publishing only\".", reason="trusted_publishing_only")
        if has_publisher and self.notices is not None:
            self.notices.long_lived_upload(project_id, project_name, uploader=username, token_id=token_id)
