"""Security notices PyPI mails, received over real SMTP: password changed, email added, API token
created, added to or removed from a project (the collaborator and the project's other Owners),
project deleted (its Owners). None carries a secret."""

from __future__ import annotations

import asyncio

import pytest

from gatehouse.auth.v1 import accounts_pb2, common_pb2, projects_pb2
from tests.authsvc.accounts_support import link_token, wait_for_mail
from tests.authsvc.project_token_factories import PASSWORD, add_role, create_token, make_project, make_user

CLIENT = common_pb2.ClientInfo(ip_address="192.0.2.7", user_agent="pytest")


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0], "token_expiry_sweep_seconds": 0}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


async def notice(mailbox, address: str, subject: str, *secrets: str):
    """The one message to `address` whose subject contains `subject`, once it arrived; it must
    contain none of `secrets`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not (found := [m for m in mailbox.to(address) if subject in m["Subject"]]):
        assert loop.time() < deadline, (address, subject, [m["Subject"] for m in mailbox.messages])
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # a second copy would have arrived by now
    found = [m for m in mailbox.to(address) if subject in m["Subject"]]
    assert len(found) == 1, [m["Subject"] for m in found]
    raw = found[0].as_string()
    for secret in secrets:
        assert secret and secret not in raw
    return found[0].get_content()


async def test_password_changed(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    new = "an entirely new passphrase 42"
    await auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=alice, old_password=PASSWORD, new_password=new, client=CLIENT))
    body = await notice(mailbox, "alice@example.org", "Your password was changed", PASSWORD, new, alice)
    assert "'alice'" in body and "logged out" in body


async def test_a_password_set_with_a_reset_link_is_told_too(auth, mailbox):
    await make_user(auth, "alice")
    await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
        username_or_email="alice", client=CLIENT))
    [reset] = await wait_for_mail(mailbox, "alice@example.org")
    token = link_token(reset, "/account/reset-password")
    new = "a reset passphrase of mine 9"
    await auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(token=token, new_password=new, client=CLIENT))
    await notice(mailbox, "alice@example.org", "Your password was changed", new, token)


async def test_email_added_is_told_to_the_primary_address(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=alice, email="second@example.org",
                                                              client=CLIENT))
    [verification] = await wait_for_mail(mailbox, "second@example.org")
    link = verification.get_content().split("token=", 1)[1].split()[0]
    body = await notice(mailbox, "alice@example.org", "An email address was added", link, alice)
    assert "second@example.org" in body
    assert not [m for m in mailbox.to("second@example.org") if "was added" in m["Subject"]]


async def test_token_created(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    created = await create_token(auth, alice, "laptop", projects=["proj"])
    body = await notice(mailbox, "alice@example.org", "An API token was created", created.token,
                        created.token[5:60], alice)
    assert "'laptop' (projects: proj)" in body and "It can upload until" in body


async def test_added_and_removed_collaborators_and_the_other_owners_are_told(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    _, carol = await make_user(auth, "carol")
    _, bob = await make_user(auth, "bob")
    await make_project(auth, "proj", "alice")
    await add_role(auth, alice, "proj", "carol", role=common_pb2.ROLE_OWNER)
    await notice(mailbox, "carol@example.org", "You were added to the project 'proj'")
    await notice(mailbox, "alice@example.org", "A collaborator was added to the project 'proj'")
    mailbox.messages.clear()
    await add_role(auth, alice, "proj", "bob")
    body = await notice(mailbox, "bob@example.org", "You were added to the project 'proj'", bob, alice)
    assert "as Maintainer" in body or "as maintainer" in body.lower()
    for owner in ("alice", "carol"):  # every Owner, the one who added bob too (as PyPI)
        body = await notice(mailbox, f"{owner}@example.org", "A collaborator was added to the project 'proj'",
                            bob, alice, carol)
        assert "'bob'" in body and "by 'alice'" in body and "you are an Owner" in body

    await auth.projects.RemoveRole(projects_pb2.RemoveRoleRequest(session_token=carol, project_name="proj",
                                                                  username="bob", client=CLIENT))
    body = await notice(mailbox, "bob@example.org", "You were removed from the project 'proj'", bob, carol)
    assert "by 'carol'" in body
    for owner in ("alice", "carol"):
        await notice(mailbox, f"{owner}@example.org", "A collaborator was removed from the project 'proj'")


async def test_project_deleted_is_told_to_its_owners(auth, mailbox):
    _, alice = await make_user(auth, "alice")
    await make_user(auth, "carol")
    await make_user(auth, "bob")
    await make_project(auth, "proj", "alice")
    await add_role(auth, alice, "proj", "carol", role=common_pb2.ROLE_OWNER)
    await add_role(auth, alice, "proj", "bob")
    await auth.projects.DeleteProject(projects_pb2.DeleteProjectRequest(
        session_token=alice, project_name="proj", confirm_name="proj", client=CLIENT))
    for owner in ("alice", "carol"):
        body = await notice(mailbox, f"{owner}@example.org", "The project 'proj' was deleted", alice)
        assert "by 'alice'" in body
    await asyncio.sleep(0.2)
    assert not [m for m in mailbox.to("bob@example.org") if "was deleted" in m["Subject"]]  # Owners only


async def test_no_notice_goes_to_an_unverified_address(auth, mailbox):
    _, dave = await make_user(auth, "dave", verified=False)
    await auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=dave, old_password=PASSWORD, new_password="another long passphrase 7", client=CLIENT))
    await asyncio.sleep(0.3)
    assert not [m for m in mailbox.to("dave@example.org") if "password" in m["Subject"].lower()]
