"""The upload check in two steps over the gateway's stream (`VerifyUploadTokens`) and the unary call:
the token step (`token_only`, at an upload's headers) refuses what the token alone decides (not one
of ours, deleted, expired, its user disabled) and nothing else; the project step, on the same
stream, is the authorisation."""

from __future__ import annotations

import datetime as dt

import grpc

from gatehouse.auth.v1 import admin_pb2, common_pb2, tokens_pb2
from gatehouse.infra.grpcserver import call_metadata
from tests.authsvc.project_token_factories import (
    create_token,
    events,
    list_tokens,
    make_project,
    make_user,
    refused,
)

CLIENT = common_pb2.ClientInfo(ip_address="192.0.2.8")
OK, INVALID, DENIED = (grpc.StatusCode.OK.value[0], grpc.StatusCode.UNAUTHENTICATED.value[0],
                       grpc.StatusCode.PERMISSION_DENIED.value[0])


def request(token: str, project: str = "", *, token_only: bool = False) -> tokens_pb2.VerifyUploadTokenRequest:
    return tokens_pb2.VerifyUploadTokenRequest(token=token, project_name=project, token_only=token_only, client=CLIENT)


async def over_the_stream(auth, *requests: tokens_pb2.VerifyUploadTokenRequest) -> list:
    """Each request as one call of one stream, in order; their results, by id."""
    stream = auth.tokens.VerifyUploadTokens(metadata=call_metadata(auth.settings.gateway_key))
    for i, req in enumerate(requests):
        await stream.write(tokens_pb2.VerifyUploadTokenCall(id=i + 1, request=req, timeout_ms=5000))
    results = {}
    for _ in requests:
        result = await stream.read()
        results[result.id] = result
    await stream.done_writing()
    return [results[i + 1] for i in range(len(requests))]


async def test_the_token_step_refuses_what_is_not_a_token_and_decides_nothing_else(auth):
    user, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    good = await create_token(auth, alice, "ci")  # all projects
    forged = good.token[:-2] + ("AA" if good.token[-2:] != "AA" else "BB")
    garbage, forged_step, step, grant, new_project = await over_the_stream(
        auth, request("pypi-not a token", token_only=True), request(forged, token_only=True),
        request(good.token, token_only=True), request(good.token, "proj"),
        request(good.token, "brand-new", token_only=True))
    assert garbage.status.code == INVALID and "malformed" in garbage.status.message
    assert forged_step.status.code == INVALID and "signature does not match" in forged_step.status.message
    assert step.status.code == OK and step.response.token_id == good.info.id
    assert not step.response.user_id and not step.response.project_id  # never an authorisation
    assert grant.status.code == OK and grant.response.user_id == user.id and grant.response.project_name == "proj"
    # The token step creates nothing and records nothing: the project step does that.
    assert new_project.status.code == OK and not new_project.response.project_created
    assert await events(auth, "project:create") and not [
        e for e in await events(auth, "project:create") if e.project_name == "brand-new"]
    assert await events(auth, "project:upload:refused") == []


async def test_the_token_step_refuses_expired_deleted_and_disabled_tokens_with_their_events(auth):
    """Issue 19: what the token alone decides is told at the headers, before the body. A scoped
    token's refusal lands in each of its existing projects' logs; an all-projects token's in the
    admin log with its owner as subject (their account log); never the token."""
    user, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    await make_project(auth, "other", "alice")
    expiring = await create_token(auth, alice, "short", projects=["proj", "other"],
                                  expires_at=auth.clock.now() + dt.timedelta(hours=1))
    deleted = await create_token(auth, alice, "gone")  # all projects
    await auth.tokens.DeleteToken(tokens_pb2.DeleteTokenRequest(session_token=alice, token_id=deleted.info.id,
                                                                client=CLIENT))
    auth.clock.advance(hours=2)
    expired_step, deleted_step, final = await over_the_stream(
        auth, request(expiring.token, token_only=True), request(deleted.token, token_only=True),
        request(expiring.token, "proj"))
    assert expired_step.status.code == DENIED and "expired" in expired_step.status.message
    assert deleted_step.status.code == INVALID and "deleted" in deleted_step.status.message
    assert final.status.code == DENIED and "expired" in final.status.message  # the project step, as before
    found = await events(auth, "project:upload:refused")
    at_headers = [e for e in found if e.details.get("step") == "headers"]
    by_project = sorted((e.project_name, e.details["reason"]) for e in at_headers
                        if e.details["token_id"] == expiring.info.id)
    assert by_project == [("other", "expired"), ("proj", "expired")]
    assert all(not e.subject_user_id for e in at_headers if e.details["token_id"] == expiring.info.id)
    [gone] = [e for e in at_headers if e.details["token_id"] == deleted.info.id]
    assert gone.details["reason"] == "token_deleted" and not gone.project_id
    assert gone.subject_user_id == user.id and gone.subject_username == "alice"
    [after_fields] = [e for e in found if "step" not in e.details]
    assert after_fields.project_name == "proj" and after_fields.details["reason"] == "expired"
    for event in found:
        assert expiring.token not in str(event) and deleted.token not in str(event)
    assert (await list_tokens(auth, alice))[0].last_used_at.seconds == 0  # neither step counted as a use

    fresh = await create_token(auth, alice, "fresh")
    await auth.admin.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username="alice", active=False))
    [disabled] = await over_the_stream(auth, request(fresh.token, token_only=True))
    assert disabled.status.code == INVALID and "disabled" in disabled.status.message


async def test_refusal_events_of_one_token_are_rated(auth):
    """A flood of refused uploads with one token records at most REFUSALS_RECORDED's limit per window."""
    from authsvc.tokens.verification import REFUSALS_RECORDED

    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    created = await create_token(auth, alice, "short", projects=["proj"],
                                 expires_at=auth.clock.now() + dt.timedelta(hours=1))
    auth.clock.advance(hours=2)
    flood = REFUSALS_RECORDED.limit + 5
    results = await over_the_stream(auth, *[request(created.token, token_only=True) for _ in range(flood)])
    assert [r.status.code for r in results] == [DENIED] * flood  # every one refused all the same
    assert len(await events(auth, "project:upload:refused")) == REFUSALS_RECORDED.limit
    auth.clock.advance(seconds=REFUSALS_RECORDED.max_window + 1)  # after the window, recorded again
    [later] = await over_the_stream(auth, request(created.token, token_only=True))
    assert later.status.code == DENIED
    assert len(await events(auth, "project:upload:refused")) == REFUSALS_RECORDED.limit + 1


async def test_the_unary_call_takes_the_token_step_too(auth):
    _, alice = await make_user(auth, "alice")
    created = await create_token(auth, alice, "ci")
    short = await create_token(auth, alice, "short", expires_at=auth.clock.now() + dt.timedelta(hours=1))
    reply = await auth.tokens.VerifyUploadToken(request(created.token, token_only=True))
    assert reply.token_id == created.info.id and not reply.user_id
    auth.clock.advance(hours=2)
    await refused(auth.tokens.VerifyUploadToken(request(short.token, token_only=True)),
                  grpc.StatusCode.PERMISSION_DENIED, "expired")
    await auth.tokens.DeleteToken(tokens_pb2.DeleteTokenRequest(session_token=alice, token_id=created.info.id,
                                                                client=CLIENT))
    await refused(auth.tokens.VerifyUploadToken(request(created.token, token_only=True)),
                  grpc.StatusCode.UNAUTHENTICATED, "deleted")
    await refused(auth.tokens.VerifyUploadToken(request("pypi-garbage", token_only=True)),
                  grpc.StatusCode.UNAUTHENTICATED, "malformed")
    # A full check without a project is still a bad argument, as before.
    await refused(auth.tokens.VerifyUploadToken(request(created.token)), grpc.StatusCode.INVALID_ARGUMENT)
