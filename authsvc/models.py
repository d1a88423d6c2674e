"""Every model of the auth service, imported once so that the metadata is complete."""

from authsvc.accounts.models import Email, OneTimeToken, Session, User  # noqa: F401
from authsvc.db import Base, outbox  # noqa: F401
from authsvc.projects.models import Project, Role  # noqa: F401
from authsvc.publishing.models import (  # noqa: F401
    ConsumedIdentityToken, PendingPublisher, Publisher, PublisherToken, PublisherTokenScope,
)
from authsvc.ratelimit import RateLimitCounter, RateLimitHit  # noqa: F401
from authsvc.tokens.models import ApiToken, ApiTokenProject  # noqa: F401
from authsvc.twofactor.models import (  # noqa: F401
    PendingLogin, RecoveryCode, TotpCredential, WebAuthnChallenge, WebAuthnCredential,
)

metadata = Base.metadata
