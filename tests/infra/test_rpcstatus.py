"""The reason's wire form and the reading of status details (gatehouse.infra.rpcstatus); the
servers' side is tested over real gRPC in tests/infra/test_streamcalls.py and tests/authsvc."""

from __future__ import annotations

import grpc
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.infra.rpcstatus import ErrorStatus, reason_code


def test_reasons_are_upper_snake_case():
    assert reason_code("not_in_scope") == "NOT_IN_SCOPE"
    assert reason_code("TokenDenied") == "TOKEN_DENIED"
    assert reason_code("totp_reused") == "TOTP_REUSED" and reason_code("") == ""


@given(st.text(max_size=40))
def test_any_reason_becomes_a_stable_upper_snake_name(text):
    code = reason_code(text)
    assert all(ch.isascii() and (ch.isupper() or ch.isdigit() or ch == "_") for ch in code)
    assert reason_code(code) == code and not code.startswith("_") and not code.endswith("_")


def test_details_round_trip_and_what_does_not_match_is_ignored():
    sent = ErrorStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many.", "RATE_LIMITED", "gatehouse.authsvc",
                       {"limit": "login:ip"}, 30)
    assert ErrorStatus.from_details(sent.code, sent.message, sent.details()) == sent
    assert ErrorStatus.of_rpc(sent.rpc_error()) == sent
    # Details for another code, or bytes that do not parse, give no reason: never a guessed one.
    for code, details in ((grpc.StatusCode.PERMISSION_DENIED, sent.details()), (sent.code, b"\xff\x00garbage")):
        assert ErrorStatus.from_details(code, "x", details) == ErrorStatus(code, "x")
