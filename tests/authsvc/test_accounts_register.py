"""Registration over gRPC: PyPI's username rules, email rules and the NIST/ASVS password policy."""

from __future__ import annotations

import grpc

from gatehouse.auth.v1 import accounts_pb2, common_pb2
from gatehouse.events.v1 import event_pb2
from tests.authsvc.accounts_support import PASSWORD, client, events, login, register, rpc_error


# Each test runs its cases against one server: starting a server per case costs more than the case.


async def test_valid_usernames_are_accepted(auth):
    for i, username in enumerate(["a", "A1", "alice", "a.b-c_d", "x" * 50, "9lives", "Mixed.Case"]):
        user = await register(auth, username, email=f"someone{i}@example.org")
        assert user.username == username


async def test_invalid_usernames_are_refused_with_a_reason(auth):
    for username, fragment in [
        ("", "Enter a username"),
        ("x" * 51, "at most 50"),
        ("-alice", "invalid"),
        ("alice-", "invalid"),
        (".alice", "invalid"),
        ("al ice", "invalid"),
        ("alice\n", "invalid"),
        ("al@ice", "invalid"),
        ("ålice", "invalid"),
        ("al\x00ice", "invalid"),
    ]:
        err = await rpc_error(register(auth, username, email="someone@example.org"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, username
        assert fragment in err.details(), username


async def test_usernames_and_emails_are_unique_case_insensitively(auth):
    await register(auth, "Alice", email="Alice@Example.org")
    err = await rpc_error(register(auth, "alice", email="other@example.org"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "username" in err.details()
    err = await rpc_error(register(auth, "bob", email="alice@example.ORG"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "email" in err.details()


async def test_invalid_emails_are_refused(auth):
    for email in ["", "plain", "a@b", "@example.org", "a@@example.org", "a b@example.org",
                  "a@example.org\r\nBcc: x@evil.test", "<a@example.org>", "a\x00@example.org",
                  "x" * 250 + "@example.org"]:
        err = await rpc_error(auth.accounts.Register(
            accounts_pb2.RegisterRequest(username="alice", email=email, password=PASSWORD)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, email
        assert "email" in err.details().lower(), email


async def test_registration_emits_account_create_without_secrets(auth):
    user = await register(auth, "alice", client=client("198.51.100.7", "browser/2"))
    assert user.username == "alice" and user.primary_email == "alice@example.org" and not user.email_verified
    [event] = await events(auth, "account:create")
    assert event.subject_user_id == user.id and event.subject_username == "alice"
    assert event.actor.kind == event_pb2.Actor.USER and event.actor.user_id == user.id
    assert event.ip_address == "198.51.100.7" and event.user_agent == "browser/2"
    assert event.source == "authsvc" and event.details["email"] == "alice@example.org"
    assert PASSWORD.encode() not in event.SerializeToString()


# -- the password policy --------------------------------------------------------------------


async def test_password_policy_reasons(auth):
    for password, reason in [
        ("", "Enter a password"),
        ("seven77", "too short"),
        ("ﬀﬀﬀ", "too short"),  # 3 characters, 6 after NFKC: still short
        ("password1", "too common"),
        ("PassWord1", "too common"),  # the list is compared case-insensitively
        ("iloveyou2", "too common"),
    ]:
        err = await rpc_error(register(auth, "alice", password=password))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, password
        assert reason in err.details(), password


async def test_password_equal_to_username_is_refused(auth):
    err = await rpc_error(register(auth, "alice-the-great", password="Alice-The-Great"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "username" in err.details()


async def test_eight_characters_and_no_composition_rules(auth):
    await register(auth, "alice", password="zqxvbnmk")  # lower-case letters only: fine
    assert (await login(auth, "alice", "zqxvbnmk")).session_token


async def test_64_and_4096_byte_passwords_are_accepted_and_4097_refused(auth):
    p64 = "k" * 64
    await register(auth, "sixtyfour", password=p64)
    assert (await login(auth, "sixtyfour", p64)).session_token
    p4096 = "é" * 2048  # two bytes each in UTF-8: exactly 4096 bytes
    assert len(p4096.encode()) == 4096
    await register(auth, "longest", password=p4096)
    assert (await login(auth, "longest", p4096)).session_token
    err = await rpc_error(register(auth, "toolong", password=p4096 + "x"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "4096 bytes" in err.details()
    err = await rpc_error(login(auth, "longest", p4096 + "x"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "4096 bytes" in err.details()


async def test_long_passwords_are_never_truncated(auth):
    password = "t" * 72 + "-the-rest-matters"
    await register(auth, "alice", password=password)
    for wrong in ("t" * 72, password[:-1], password + "!"):
        err = await rpc_error(login(auth, "alice", wrong))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await login(auth, "alice", password)).session_token


async def test_passwords_are_nfkc_normalised(auth):
    fullwidth = "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ"  # NFKC: "correct horse battery"
    await register(auth, "alice", password=fullwidth)
    assert (await login(auth, "alice", "correct horse battery")).session_token
    decomposed = "cafe\u0301 au lait, s'il vous plait"
    await register(auth, "bob", password=decomposed)
    assert (await login(auth, "bob", "caf\u00e9 au lait, s'il vous plait")).session_token


async def test_name_rules(auth):
    user = await register(auth, "alice", name="Alice Liddell")
    assert user.name == "Alice Liddell"
    err = await rpc_error(register(auth, "bob", name="x" * 101))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in err.details()
    err = await rpc_error(register(auth, "carol", name="Carol\x00"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


NASTY = ["\x00", "a" * 5000, "\u202e", "😀" * 300, "a@b.c\x00", "' OR 1=1 --", "%s%n", "\r\n"]


async def test_hostile_input_never_gives_internal_errors(auth):
    """Regression guard: every RPC answers bad input with a precise status, never INTERNAL/UNKNOWN."""
    await register(auth, "alice")
    session = (await login(auth)).session_token
    calls = []
    for bad in NASTY:
        calls += [
            auth.accounts.Register(accounts_pb2.RegisterRequest(username=bad, email=bad, password=bad, name=bad)),
            auth.accounts.Login(accounts_pb2.LoginRequest(username=bad, password=bad,
                                                          client=common_pb2.ClientInfo(ip_address=bad, user_agent=bad))),
            auth.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(token=bad)),
            auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=bad)),
            auth.accounts.ResendVerification(accounts_pb2.ResendVerificationRequest(session_token=session, email=bad)),
            auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session, email=bad)),
            auth.accounts.RevokeSession(accounts_pb2.RevokeSessionRequest(session_token=session, session_id=bad)),
            auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
                session_token=session, old_password=bad, new_password=bad)),
            auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
                username_or_email=bad, client=common_pb2.ClientInfo(ip_address="203.0.113.9"))),
            auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(token=bad, new_password=bad)),
        ]
    for call in calls:
        try:
            await call
        except grpc.aio.AioRpcError as err:
            assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err
            assert err.details()
    # The session is still fine after all that (nothing above was allowed to end it).
    assert (await auth.accounts.ValidateSession(
        accounts_pb2.ValidateSessionRequest(session_token=session))).user.username == "alice"
