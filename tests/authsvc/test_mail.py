"""The mailers: SMTP to a real listener, the file mailbox, and failures that name no secret."""

from __future__ import annotations

import email
import email.policy

import pytest

from authsvc.mail import DroppingMailer, FileMailer, MailError, Message, SmtpConfig, SmtpMailer, build_mailer
from gatehouse.infra.redis_embed import free_port

SENDER = "Gatehouse <noreply@index.example.test>"
SECRET_BODY = "open https://x.test/?token=very-secret-token-value"


async def test_smtp_mailer_delivers_to_the_listener(smtp_server):
    url, mailbox = smtp_server
    await SmtpMailer(url, sender=SENDER).send(Message(to="alice@example.org", subject="Hello", body="Hi there\n"))
    [message] = mailbox.to("alice@example.org")
    assert message["From"] == SENDER and message["Subject"] == "Hello"
    assert message["Message-ID"].endswith("@index.example.test>")
    assert message.get_content().replace("\r\n", "\n") == "Hi there\n"


async def test_smtp_failure_raises_mail_error_without_the_body():
    mailer = SmtpMailer(f"smtp://127.0.0.1:{free_port()}", sender=SENDER, timeout=2)
    with pytest.raises(MailError) as err:
        await mailer.send(Message(to="alice@example.org", subject="Reset", body=SECRET_BODY))
    assert "127.0.0.1" in str(err.value) and "very-secret" not in str(err.value)


async def test_file_mailer_writes_one_eml_per_message(tmp_path):
    mailer = FileMailer(tmp_path / "mailbox", sender=SENDER)
    for i in range(2):
        await mailer.send(Message(to=f"user{i}@example.org", subject=f"n{i}", body=f"body {i}\n"))
    files = sorted((tmp_path / "mailbox").glob("*.eml"))
    assert len(files) == 2 and not list((tmp_path / "mailbox").glob(".*"))
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert sorted(m["To"] for m in parsed) == ["user0@example.org", "user1@example.org"]


async def test_file_mailer_failure_is_a_mail_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(MailError):
        await FileMailer(blocker, sender=SENDER).send(Message(to="a@example.org", subject="s", body=SECRET_BODY))


def test_header_injection_is_impossible():
    from authsvc.mail import build_email

    with pytest.raises(ValueError):
        build_email(Message(to="a@example.org\r\nBcc: evil@example.net", subject="s", body="b"), SENDER).as_bytes()


def test_smtp_urls():
    assert SmtpConfig.from_url("smtp://relay:2525") == SmtpConfig("relay", 2525, "plain")
    cfg = SmtpConfig.from_url("smtps://user%40x:p%3Ass@mail.example.org")
    assert (cfg.host, cfg.port, cfg.security, cfg.username, cfg.password) == (
        "mail.example.org", 465, "tls", "user@x", "p:ss")
    assert "p:ss" not in repr(cfg)
    assert SmtpConfig.from_url("smtp+starttls://mail.example.org").port == 587
    for bad in ("http://x", "smtp://", "relay:25"):
        with pytest.raises(ValueError):
            SmtpConfig.from_url(bad)


def test_build_mailer_picks_the_transport(tmp_path):
    assert isinstance(build_mailer(smtp_url="smtp://h:25", mailbox_dir=str(tmp_path), sender=SENDER), SmtpMailer)
    assert isinstance(build_mailer(smtp_url="", mailbox_dir=str(tmp_path), sender=SENDER), FileMailer)
    assert isinstance(build_mailer(smtp_url="", mailbox_dir="", sender=SENDER), DroppingMailer)
