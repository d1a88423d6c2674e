"""Wiring: builds the auth service's collaborators from settings (no I/O at import time)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from authsvc.accounts.devices import DeviceTokens
from authsvc.accounts.passwords import PasswordHasher, PasswordPolicy
from authsvc.accounts.service import AccountsConfig, AccountsService
from authsvc.db import outbox
from authsvc.mail import build_mailer
from authsvc.notices import Notifier
from authsvc.projects.service import ProjectsService, projects_requiring_second_factor
from authsvc.publishing.exchange import Exchange
from authsvc.publishing.identity import IdentityVerifier
from authsvc.publishing.keys import KeySets
from authsvc.publishing.notices import OwnerNotices
from authsvc.publishing.policy import LongLivedTokenPolicy, has_publisher
from authsvc.publishing.service import PublishersService, remove_for_deleted_project
from authsvc.publishing.uploads import PublisherTokenUploads
from authsvc.ratelimit import RateLimiter
from authsvc.settings import Settings
from authsvc.tokens.codec import TokenCodec
from authsvc.tokens.disclosure import DisclosureService
from authsvc.tokens.lookup import make_lookup
from authsvc.tokens.owners import ProjectTokens
from authsvc.tokens.revocation import revoke_for_deleted_project
from authsvc.tokens.expiry import ExpirySweep
from authsvc.tokens.scannerkeys import ReportVerifier
from authsvc.tokens.service import TokenLifetime, TokensService
from authsvc.tokens.verification import TokenVerifier
from authsvc.twofactor.policy import TwoFactorPolicy
from authsvc.twofactor import totp, webauthn
from authsvc.twofactor.core import TwoFactorConfig
from authsvc.twofactor.pending import PendingLogins
from authsvc.twofactor.service import TwoFactorService
from gatehouse.infra.clock import Clock, SystemClock
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.outbox import EventEmitter, event_signer
from gatehouse.infra.transactions import Transactions


@dataclasses.dataclass
class AuthApp:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    db: async_sessionmaker
    tx: Transactions
    events: EventEmitter
    hasher: PasswordHasher
    accounts: AccountsService
    projects: ProjectsService
    tokens: TokensService
    project_tokens: ProjectTokens
    verifier: TokenVerifier
    twofactor: TwoFactorService
    disclosures: DisclosureService
    notifier: Notifier
    expiry: ExpirySweep
    publishers: PublishersService
    exchange: Exchange
    keys: KeySets
    owner_notices: OwnerNotices

    async def close(self) -> None:
        await self.expiry.stop()
        await self.disclosures.close()
        await self.keys.close()
        await self.owner_notices.close()
        await self.notifier.close()
        await self.twofactor.close()
        await self.verifier.close()
        await self.accounts.close()
        self.hasher.close()
        await self.engine.dispose()
        self.tx.dispose()


def build_app(settings: Settings, *, clock: Clock | None = None) -> AuthApp:
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    db = make_session_factory(engine)
    tx = Transactions(settings.database_url, db)
    events = EventEmitter(outbox, source="authsvc", clock=clock,
                          signer=event_signer("authsvc", settings.event_keys))
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism, workers=settings.hash_workers,
        queue=settings.hash_queue,
    )
    limiter = RateLimiter(clock)
    mailer = build_mailer(smtp_url=settings.smtp_url, mailbox_dir=settings.mailbox_dir, sender=settings.mail_from)
    notifier = Notifier(mailer, public_url=settings.public_url)
    pending_logins = build_pending_logins(settings, clock)
    accounts_config = AccountsConfig.from_settings(settings)
    accounts = AccountsService(
        db=db, clock=clock, hasher=hasher, policy=PasswordPolicy(), events=events,
        limiter=limiter, config=accounts_config, mailer=mailer, second_factor=pending_logins,
        devices=DeviceTokens(settings.token_secrets, clock=clock, lifetime=accounts_config.device_token_lifetime),
        notifier=notifier,
    )
    policy = TwoFactorPolicy(require_for_upload=settings.require_2fa_for_upload, public_url=settings.public_url,
                             projects_requiring=projects_requiring_second_factor)
    twofactor = build_twofactor_service(settings, db=db, tx=tx, clock=clock, events=events, accounts=accounts,
                                        pending=pending_logins, limiter=limiter, mailer=mailer, policy=policy)
    owner_notices = OwnerNotices(db=db, mailer=mailer, limiter=limiter, public_url=settings.public_url)
    projects, tokens, verifier = build_token_services(
        settings, clock, db, tx, events, policy=twofactor.policy, notifier=notifier,
        long_lived=LongLivedTokenPolicy(notices=owner_notices))
    expiry = ExpirySweep(db=db, clock=clock, events=events, notifier=notifier,
                         notice_before=dt.timedelta(days=settings.token_expiry_notice_days),
                         interval=settings.token_expiry_sweep_seconds)
    disclosures = DisclosureService(
        tx=tx, codec=tokens.codec, events=events, mailer=mailer, public_url=settings.public_url,
        verifier=ReportVerifier(settings.leak_scanners, ttl=settings.leak_keys_cache_seconds))
    keys, exchange = build_exchange(settings, clock, db, events, projects, tokens.codec)
    return AuthApp(settings=settings, clock=clock, engine=engine, db=db, tx=tx, events=events,
                   hasher=hasher, accounts=accounts, projects=projects, tokens=tokens, verifier=verifier,
                   project_tokens=ProjectTokens(db=db, events=events, projects=projects, has_publisher=has_publisher,
                                                notifier=notifier),
                   twofactor=twofactor, disclosures=disclosures, notifier=notifier, expiry=expiry,
                   keys=keys, exchange=exchange,
                   publishers=PublishersService(db=db, clock=clock, events=events, issuers=settings.oidc_issuers,
                                                notices=owner_notices),
                   owner_notices=owner_notices)


def build_exchange(settings: Settings, clock: Clock, db: async_sessionmaker, events: EventEmitter,
                   projects: ProjectsService, codec: TokenCodec) -> tuple[KeySets, Exchange]:
    """Trusted publishing's exchange: the issuers' key sets, the identity-token verifier, minting."""
    keys = KeySets(clock=clock, refresh_interval=dt.timedelta(seconds=settings.oidc_keys_refresh_seconds),
                   max_age=dt.timedelta(seconds=settings.oidc_keys_max_age_seconds),
                   stale_for=dt.timedelta(seconds=settings.oidc_keys_stale_seconds), ca_file=settings.oidc_ca_file)
    leeway = dt.timedelta(seconds=settings.oidc_leeway_seconds)
    identity = IdentityVerifier(issuers=settings.oidc_issuers, audience=settings.oidc_audience, leeway=leeway,
                                keys=keys, clock=clock)
    exchange = Exchange(db=db, clock=clock, events=events, identity=identity, codec=codec, projects=projects,
                        token_lifetime=dt.timedelta(seconds=settings.oidc_token_seconds), leeway=leeway,
                        audience=settings.oidc_audience)
    return keys, exchange


def build_token_services(settings: Settings, clock: Clock, db: async_sessionmaker,
                         tx: Transactions, events: EventEmitter, *, policy: TwoFactorPolicy | None = None,
                         limiter: RateLimiter | None = None, notifier: Notifier | None = None,
                         long_lived: LongLivedTokenPolicy | None = None,
                         ) -> tuple[ProjectsService, TokensService, TokenVerifier]:
    """Projects and roles, API tokens, and the token verifier the gateway calls on every upload."""
    projects = ProjectsService(db=db, clock=clock, events=events, notifier=notifier,
                               deletion_steps=(revoke_for_deleted_project, remove_for_deleted_project))
    codec = TokenCodec(prefix=settings.token_prefix, location=settings.token_location,
                       secrets_by_version=settings.token_secrets)
    lifetime = TokenLifetime(default=dt.timedelta(days=settings.token_default_days),
                             maximum=dt.timedelta(days=settings.token_max_days))
    tokens = TokensService(db=db, clock=clock, events=events, codec=codec, policy=policy, lifetime=lifetime,
                           notifier=notifier)
    verifier = TokenVerifier(
        tx=tx, lookup=make_lookup(settings.database_url, tx), clock=clock, codec=codec, projects=projects,
        allow_project_creation=settings.allow_project_creation,
        last_used_interval=dt.timedelta(seconds=settings.token_last_used_interval_seconds), policy=policy,
        limiter=limiter, publisher_uploads=PublisherTokenUploads(db=db, clock=clock), long_lived=long_lived)
    return projects, tokens, verifier


def build_twofactor_service(settings, *, db, tx, clock, events, accounts, pending: PendingLogins, limiter, mailer,
                            policy: TwoFactorPolicy) -> TwoFactorService:
    """The two-factor service from settings (`pending` is also the accounts service's seam)."""
    config = TwoFactorConfig.from_settings(settings)
    return TwoFactorService(
        db=db, tx=tx, clock=clock, events=events, accounts=accounts, seeds=totp.SeedBox(settings.totp_keys),
        relying_party=webauthn.RelyingParty(
            rp_id=settings.webauthn_rp_id, rp_name=settings.webauthn_rp_name, origins=settings.webauthn_origins,
            user_verification=settings.webauthn_user_verification, challenge_lifetime=config.challenge_lifetime),
        pending=pending, policy=policy, limiter=limiter, mailer=mailer, config=config,
    )


def build_pending_logins(settings, clock) -> PendingLogins:
    return PendingLogins(clock=clock, lifetime=dt.timedelta(seconds=settings.pending_login_seconds))
