"""Mail to a project's Owners about trusted publishing: a publisher added or removed, and an upload
with a long-lived API token to a project that has a publisher (a leaked token is the risk trusted
publishing removes, so its use there is worth a look). Sent after the change committed, in the
background; a failure is logged, never the body. Never a secret in them."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import and_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import Email, User
from authsvc.mail import Mailer, Message
from authsvc.projects.models import OWNER, Role
from authsvc.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)
# One mail per (token, project) a day: a CI job uploading with a long-lived token every few minutes
# tells the Owners once, not on every upload. Counted in the shared rate-limit store, so replicas agree.
LONG_LIVED_UPLOAD_NOTICE = Limit("publishing:long-lived-upload-notice", limit=1, window=24 * 3600)


def _project_url(public_url: str, project_name: str) -> str:
    return f"{public_url.rstrip('/')}/projects/{project_name}/"


def publisher_changed(*, to: str, username: str, project_name: str, display: str, added: bool, by: str,
                      public_url: str) -> Message:
    if added:
        subject = f"A trusted publisher was added to {project_name}"
        what = (f"{by} added a trusted publisher to the project {project_name!r}:\n\n    {display}\n\n"
                "That CI workflow can now upload releases of the project without an API token.\n")
    else:
        subject = f"A trusted publisher was removed from {project_name}"
        what = (f"{by} removed the trusted publisher\n\n    {display}\n\nfrom the project {project_name!r}. "
                "Upload tokens it was given no longer work for the project.\n")
    return Message(to=to, subject=subject, body=(
        f"Hello {username},\n\n{what}\nIf this was not expected, review the project's trusted publishers and "
        f"history at {_project_url(public_url, project_name)} .\n"))


def long_lived_upload(*, to: str, username: str, project_name: str, uploader: str, token_id: str,
                      public_url: str) -> Message:
    return Message(to=to, subject=f"{project_name} was uploaded to with a long-lived API token", body=(
        f"Hello {username},\n\nThe project {project_name!r} has a trusted publisher, yet a long-lived API token "
        f"of {uploader} (token id {token_id}) just uploaded to it. If the project's releases should come only "
        "from its CI workflow, delete that token and turn on \"trusted publishing only\" on the project's page: "
        f"{_project_url(public_url, project_name)} .\nYou get this mail at most once a day for each token.\n"))


async def owner_addresses(s: AsyncSession, project_id: str) -> list[tuple[str, str]]:
    """(username, address) of the project's Owners with a verified primary address."""
    rows = await s.execute(
        select(User.username, Email.address).join(Role, Role.user_id == User.id)
        .join(Email, and_(Email.user_id == User.id, Email.primary == true(), Email.verified == true()))
        .where(Role.project_id == project_id, Role.role_name == OWNER, User.is_active == true())
        .order_by(User.username))
    return [(username, address) for username, address in rows.all()]


class OwnerNotices:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], mailer: Mailer, limiter: RateLimiter,
                 public_url: str) -> None:
        self.db = db
        self.mailer = mailer
        self.limiter = limiter
        self.public_url = public_url
        self._tasks: set[asyncio.Task[None]] = set()

    def publisher_changed(self, project_id: str, project_name: str, display: str, *, added: bool, by: str) -> None:
        async def build(s: AsyncSession) -> list[Message]:
            return [publisher_changed(to=address, username=username, project_name=project_name, display=display,
                                      added=added, by=by, public_url=self.public_url)
                    for username, address in await owner_addresses(s, project_id)]

        self._later(build, project_id)

    def long_lived_upload(self, project_id: str, project_name: str, *, uploader: str, token_id: str) -> None:
        async def build(s: AsyncSession) -> list[Message]:
            async with s.begin():
                taken = await self.limiter.acquire(s, [(LONG_LIVED_UPLOAD_NOTICE, f"{token_id}:{project_id}")])
                if taken.refused is not None:
                    return []
                return [long_lived_upload(to=address, username=username, project_name=project_name,
                                          uploader=uploader, token_id=token_id, public_url=self.public_url)
                        for username, address in await owner_addresses(s, project_id)]

        self._later(build, project_id)

    def _later(self, build, project_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(build, project_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, build, project_id: str) -> None:
        try:
            async with self.db() as s:
                messages = await build(s)
            for message in messages:
                await self.mailer.send(message)
        except Exception as exc:
            log.error("trusted publishing notice not delivered", extra={"project_id": project_id,
                                                                        "error": str(exc)[:200]})

    async def close(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
