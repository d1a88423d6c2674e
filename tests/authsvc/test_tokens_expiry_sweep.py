"""The expiry sweep: a notice mail a week before a token ends and an event when it has, each once
even with several authsvc replicas sweeping at the same moment (two workers race here)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt

import pytest

from authsvc.app import build_app
from tests.authsvc.accounts_support import wait_for_mail
from tests.authsvc.project_token_factories import create_token, events, make_project, make_user

DAY = 86400


@pytest.fixture
def auth_overrides(smtp_server):
    url, _ = smtp_server
    # The periodic task is off: the test runs the sweeps itself, two at once.
    return {"smtp_url": url, "token_expiry_sweep_seconds": 0}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


@pytest.fixture
async def second_replica(auth):
    """Another authsvc over the same database and clock: a second worker."""
    app = build_app(auth.settings, clock=auth.clock)
    yield app
    await app.close()


def _notices(mailbox) -> collections.Counter:
    return collections.Counter(m["Subject"] for m in mailbox.to("alice@example.org") if "expires soon" in m["Subject"])


async def test_two_workers_send_each_notice_and_record_each_expiry_once(auth, second_replica, mailbox):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    now = auth.clock.now()
    secrets = []
    for i in range(12):
        created = await create_token(auth, alice, f"ci-{i}", projects=["proj"] if i % 2 else (),
                                     expires_at=now + dt.timedelta(days=20))
        secrets.append(created.token)
    later = await create_token(auth, alice, "later", expires_at=now + dt.timedelta(days=60))
    await wait_for_mail(mailbox, "alice@example.org", 13)  # the "token created" notices, sent in the background
    mailbox.messages.clear()
    workers = (auth.running.app.expiry, second_replica.expiry)

    auth.clock.advance(12 * DAY)  # 8 days left: not yet due
    assert [r.notices for r in await asyncio.gather(*(w.run_once() for w in workers))] == [0, 0]
    auth.clock.advance(2 * DAY)  # 6 days left
    results = await asyncio.gather(*(w.run_once() for w in workers))
    assert sum(r.notices for r in results) == 12
    sent = _notices(mailbox)
    assert sent == {f"Your API token 'ci-{i}' expires soon": 1 for i in range(12)}
    body = next(m for m in mailbox.to("alice@example.org")).get_content()
    assert "/account/tokens" in body and "expires at" in body
    assert not any(secret[5:40] in m.as_string() for m in mailbox.messages for secret in secrets)
    assert [r.notices for r in await asyncio.gather(*(w.run_once() for w in workers))] == [0, 0]

    auth.clock.advance(6 * DAY + 1)  # ended
    results = await asyncio.gather(*(w.run_once() for w in workers))
    assert sum(r.expired for r in results) == 12
    expired = await events(auth, "account:api_token:expired")
    assert len(expired) == 12 and len({e.details["token_id"] for e in expired}) == 12
    assert later.info.id not in {e.details["token_id"] for e in expired}
    assert all(e.actor.username == "gatehouse" for e in expired)
    assert len(await events(auth, "project:api_token:expired")) == 6  # the project-scoped half, in the project's log
    assert [r.expired for r in await asyncio.gather(*(w.run_once() for w in workers))] == [0, 0]
    assert sum(_notices(mailbox).values()) == 12


async def test_a_token_that_lives_less_than_the_notice_period_gets_no_notice(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    await create_token(auth, alice, "short", expires_at=auth.clock.now() + dt.timedelta(days=3))
    await wait_for_mail(mailbox, "alice@example.org", 1)
    mailbox.messages.clear()
    assert (await auth.running.app.expiry.run_once()).notices == 0
    auth.clock.advance(3 * DAY)
    assert (await auth.running.app.expiry.run_once()).expired == 1
    assert not _notices(mailbox)


async def test_a_notice_the_mail_server_refused_is_sent_by_a_later_sweep(auth, mailbox, smtp_server):
    _, alice = await make_user(auth, "alice")
    await create_token(auth, alice, "ci", expires_at=auth.clock.now() + dt.timedelta(days=20))
    auth.clock.advance(15 * DAY)
    app = auth.running.app
    working = app.notifier.mailer

    class Refusing:
        async def send(self, message):
            from authsvc.mail import MailError
            raise MailError("refused")

    app.notifier.mailer = Refusing()
    try:
        assert (await app.expiry.run_once()).notices == 0
    finally:
        app.notifier.mailer = working
    assert (await app.expiry.run_once()).notices == 1
    assert sum(_notices(mailbox).values()) == 1
