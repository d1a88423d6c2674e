"""The upload check in two steps over the gateway's stream (`VerifyUploadTokens`) and the unary call:
the token step (`token_only`, at an upload's headers) refuses what is not one of our tokens and
decides nothing else; the project step, on the same stream, is the authorisation."""

from __future__ import annotations

import datetime as dt

import grpc

from gatehouse.auth.v1 import common_pb2, tokens_pb2
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


async def test_expiry_and_deletion_are_told_by_the_project_step_with_its_event(auth):
    """Expired or deleted tokens are authentic: the token step lets them through, so that the
    refusal (and its `project:upload:refused` event) names the project the upload was for."""
    _, alice = await make_user(auth, "alice")
    await make_project(auth, "proj", "alice")
    created = await create_token(auth, alice, "short", expires_at=auth.clock.now() + dt.timedelta(hours=1))
    auth.clock.advance(hours=2)
    step, final = await over_the_stream(auth, request(created.token, token_only=True), request(created.token, "proj"))
    assert step.status.code == OK
    assert final.status.code == DENIED and "expired" in final.status.message
    [event] = await events(auth, "project:upload:refused")
    assert event.project_name == "proj" and event.details["reason"] == "expired"
    assert (await list_tokens(auth, alice))[0].last_used_at.seconds == 0  # neither step counted as a use


async def test_the_unary_call_takes_the_token_step_too(auth):
    _, alice = await make_user(auth, "alice")
    created = await create_token(auth, alice, "ci")
    reply = await auth.tokens.VerifyUploadToken(request(created.token, token_only=True))
    assert reply.token_id == created.info.id and not reply.user_id
    await refused(auth.tokens.VerifyUploadToken(request("pypi-garbage", token_only=True)),
                  grpc.StatusCode.UNAUTHENTICATED, "malformed")
    # A full check without a project is still a bad argument, as before.
    await refused(auth.tokens.VerifyUploadToken(request(created.token)), grpc.StatusCode.INVALID_ARGUMENT)
