"""Who must use a second factor: the site's upload policy and projects that require one of their
collaborators. Checked when creating API tokens, at every upload, and before removing a factor.

Each check is one indexed query (EXISTS over the user's confirmed app and keys); the upload's
check reads it with the token, in the verification's one query. Checks raise `TwoFactorRequired` (PERMISSION_DENIED, a message twine can show)
rather than returning a bool a caller could forget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.errors import PermissionDenied
from authsvc.twofactor.pending import has_second_factor

SITE = "site"
# The names of the projects that require a second factor of this user (a collaborator), sorted.
ProjectsRequiring = Callable[[AsyncSession, str], Awaitable[list[str]]]


class TwoFactorRequired(PermissionDenied):
    def __init__(self, message: str):
        super().__init__(message, reason="two_factor_required")


class TwoFactorPolicy:
    def __init__(self, *, require_for_upload: bool, public_url: str, projects_requiring: ProjectsRequiring):
        """`projects_requiring` is the projects area's question (passed in, so that this package
        does not import the one above it)."""
        self.require_for_upload = require_for_upload
        self.settings_url = f"{public_url.rstrip('/')}/account/two-factor"
        self.projects_requiring = projects_requiring

    async def required_by(self, s: AsyncSession, user_id: str) -> list[str]:
        """Why the user must keep a second factor: "site" and/or names of projects that require
        one of their collaborators. Empty when nothing requires it."""
        names = await self.projects_requiring(s, user_id)
        return ([SITE] if self.require_for_upload else []) + names

    async def check_token_creation(self, s: AsyncSession, user_id: str) -> None:
        """Under the site policy, API tokens are for users with a second factor only."""
        if self.require_for_upload and not await has_second_factor(s, user_id):
            raise TwoFactorRequired(
                "This index requires two-factor authentication for uploads: add an authenticator app "
                f"or a security key to your account before creating an API token ({self.settings_url}).")

    def check_upload(self, *, has_second_factor: bool, username: str, project_name: str,
                     project_requires: bool) -> None:
        """Refuse an upload by a user without a second factor when the site or the project requires
        one. `project_requires` is the project's `two_factor_required` flag (False for a project
        this upload would create); `has_second_factor` is read with the token (its lookup)."""
        if has_second_factor or not (self.require_for_upload or project_requires):
            return
        if project_requires and not self.require_for_upload:
            why = f"the project {project_name!r} requires two-factor authentication of its collaborators"
        else:
            why = "this index requires two-factor authentication for uploads"
        raise TwoFactorRequired(f"User {username!r} has not enabled two-factor authentication and {why}. "
                                f"Enable it at {self.settings_url}, then upload again.")
