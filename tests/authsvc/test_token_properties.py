"""Property tests of the token verifier (format, signature and caveats; no database, no gRPC):
no changed byte leaves a token valid, no caveat can be dropped, and no appended caveat widens
the set of (project, time, user, purpose) that a token verifies for."""

from __future__ import annotations

import binascii
import datetime as dt
import json
import secrets
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymacaroons import Macaroon
from pymacaroons.caveat import Caveat as RawCaveat
from pymacaroons.macaroon import MACAROON_V2
from pymacaroons.utils import hmac_digest

from authsvc.tokens.caveats import Context, Expiry, ProjectRef, Projects, Purpose, Success, UserBound
from authsvc.tokens.codec import TokenCodec

PREFIX = "pypi-"
CODEC = TokenCodec(prefix=PREFIX, location="gatehouse", secrets_by_version=[(1, secrets.token_bytes(32))])
USER = str(uuid.UUID(int=1))
OTHER_USER = str(uuid.UUID(int=2))
PROJECTS = {"alpha": str(uuid.UUID(int=11)), "beta": str(uuid.UUID(int=12)), "gamma": str(uuid.UUID(int=13))}
T0 = 1_800_000_000
TIMES = [T0 - 100, T0, T0 + 50, T0 + 150, T0 + 10**6]
# Existing projects, one deleted and re-created under an old name, and one that does not exist.
TARGETS = [(name, ProjectRef(pid, name)) for name, pid in PROJECTS.items()]
TARGETS += [("alpha", ProjectRef(str(uuid.UUID(int=99)), "alpha")), ("delta", None)]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Client addresses (and one unknown) and release versions, for the network and version caveats.
CLIENTS = ["192.0.2.5", "2001:db8::1", ""]
VERSIONS = ["1.0", ""]


def contexts():
    for when in TIMES:
        now = dt.datetime.fromtimestamp(when, dt.timezone.utc)
        for user in (USER, OTHER_USER):
            for ip in CLIENTS:
                yield Context(now=now, user_id=user, purpose=Purpose.INDEX, client_ip=ip)
                for name, project in TARGETS:
                    for version in VERSIONS:
                        yield Context(now=now, user_id=user, purpose=Purpose.UPLOAD, project_name=name,
                                      project=project, client_ip=ip, version=version)


CONTEXTS = list(contexts())


def allowed(token: str) -> set[int]:
    return {i for i, ctx in enumerate(CONTEXTS) if isinstance(CODEC.verify(token, ctx), Success)}


scopes = st.one_of(st.none(), st.sets(st.sampled_from(sorted(PROJECTS)), min_size=1))
# Every minted window contains T0 (so `_good_context` holds) and ends at one of the sampled times.
expiries = st.one_of(st.none(), st.tuples(st.sampled_from(TIMES[:2]), st.sampled_from(TIMES[2:])))


@st.composite
def tokens(draw):
    caveats = [UserBound(USER)]
    scope = draw(scopes)
    if scope:
        names = sorted(scope)
        caveats.append(Projects(tuple(names), tuple(PROJECTS[n] for n in names)))
    window = draw(expiries)
    if window:
        caveats.append(Expiry(*window))
    caveats = draw(st.permutations(caveats))
    return CODEC.mint(str(uuid.uuid4()), caveats)


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


ids = st.one_of(st.sampled_from(list(PROJECTS.values()) + [str(uuid.UUID(int=99)), "x"]), st.text(max_size=8))
names = st.one_of(st.sampled_from(sorted(PROJECTS) + ["delta", "Alpha", ""]), st.text(max_size=8))
times = st.one_of(st.sampled_from(TIMES), st.integers(min_value=-5, max_value=2**60), st.booleans(), st.floats())
# Well-formed scopes: known names paired with their own id, another project's id or a stale one.
known_pairs = st.lists(st.tuples(st.sampled_from(sorted(PROJECTS) + ["delta"]),
                                 st.sampled_from(list(PROJECTS.values()) + [str(uuid.UUID(int=99))])),
                       min_size=1, max_size=4)
appended_caveats = st.one_of(
    st.builds(lambda nbf, exp: _json({"v": 1, "t": "expiry", "nbf": nbf, "exp": exp}), times, times),
    st.builds(lambda pairs: _json({"v": 1, "t": "projects", "names": [n for n, _ in pairs],
                                   "ids": [PROJECTS.get(n, i) if k % 2 else i for k, (n, i) in enumerate(pairs)]}),
              known_pairs),
    st.builds(lambda n, i: _json({"v": 1, "t": "projects", "names": n, "ids": i}),
              st.lists(names, max_size=3), st.lists(ids, max_size=3)),
    st.builds(lambda u: _json({"v": 1, "t": "user", "id": u}), st.sampled_from([USER, OTHER_USER, ""])),
    st.builds(lambda nets: _json({"v": 1, "t": "ips", "nets": nets}),
              st.lists(st.sampled_from(["192.0.2.0/24", "192.0.2.5/32", "2001:db8::/32", "0.0.0.0/0", "::/0",
                                        "198.51.100.0/24", "192.0.2.1/24", "2001:0db8::/32", ""]), max_size=3)),
    st.builds(lambda v: _json({"v": 1, "t": "version", "version": v}),
              st.sampled_from(["1.0", "1.0.0", "2.0", "1.0+local", "v1.0", "", "1.0rc1"])),
    st.just(_json({"v": 1, "t": "publisher"})),
    st.just(_json({"v": 1, "t": "publisher", "id": USER})),
    st.builds(lambda v, t: _json({"v": v, "t": t}), st.integers(0, 3), st.text(max_size=10)),
    st.builds(_json, st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                                  lambda inner: st.lists(inner, max_size=3)
                                  | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)),
    st.binary(max_size=40),
    st.just(b'{"v":1,"t":"user","id":"%s","id":"%s"}' % (OTHER_USER.encode(), USER.encode())),
)


def _macaroon(token: str) -> Macaroon:
    return Macaroon.deserialize(token.removeprefix(PREFIX))


def attenuate(token: str, caveat: bytes) -> str:
    """What any holder can do: append a first-party caveat and extend the HMAC chain."""
    macaroon = _macaroon(token)
    macaroon.caveats.append(RawCaveat(caveat_id=caveat, version=MACAROON_V2))
    signature = hmac_digest(binascii.unhexlify(macaroon.signature_bytes), caveat)
    macaroon.signature = binascii.hexlify(signature)
    return PREFIX + macaroon.serialize()


def _good_context(token: str) -> Context:
    """A context the untouched token verifies for (index reads by its user at T0 always are)."""
    ctx = Context(now=dt.datetime.fromtimestamp(T0, dt.timezone.utc), user_id=USER, purpose=Purpose.INDEX)
    assert isinstance(CODEC.verify(token, ctx), Success)
    return ctx


@FAST
@given(tokens(), st.data())
def test_changing_any_byte_of_a_token_makes_it_fail(token, data):
    ctx = _good_context(token)
    raw = bytearray(token.encode("ascii"))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor mask")
    result = CODEC.verify(raw.decode("latin-1"), ctx)
    assert not isinstance(result, Success) and result.reason


def test_every_single_byte_change_of_one_token_fails():
    """Exhaustive for one token: every position, a few masks (including the low bits that base64
    padding would hide)."""
    token = CODEC.mint(str(uuid.uuid4()), [UserBound(USER), Projects(("alpha",), (PROJECTS["alpha"],)),
                                          Expiry(T0 - 100, T0 + 150)])
    ctx = _good_context(token)
    raw = token.encode("ascii")
    for index in range(len(raw)):
        for mask in (1, 2, 3, 0x20, 0x80):
            changed = bytearray(raw)
            changed[index] ^= mask
            assert not isinstance(CODEC.verify(changed.decode("latin-1"), ctx), Success), (index, mask)


@FAST
@given(tokens(), st.data())
def test_removing_a_caveat_makes_it_fail(token, data):
    ctx = _good_context(token)
    macaroon = _macaroon(token)
    index = data.draw(st.integers(0, len(macaroon.caveats) - 1), label="caveat")
    del macaroon.caveats[index]
    assert not isinstance(CODEC.verify(PREFIX + macaroon.serialize(), ctx), Success)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens(), st.lists(appended_caveats, min_size=1, max_size=3))
def test_appending_caveats_never_widens_what_a_token_may_do(token, extra):
    before = allowed(token)
    assert before  # every minted token verifies for something
    widened = token
    for caveat in extra:
        widened = attenuate(widened, caveat)
        after = allowed(widened)
        assert after <= before, [CONTEXTS[i] for i in after - before]


def test_the_publisher_caveat_narrows_a_token_to_uploads():
    token = CODEC.mint(str(uuid.uuid4()), [UserBound(USER)])
    narrowed = attenuate(token, _json({"v": 1, "t": "publisher"}))
    assert allowed(narrowed) == {i for i in allowed(token) if CONTEXTS[i].purpose is Purpose.UPLOAD}


def test_appending_a_caveat_can_narrow():
    """The verifier does read appended caveats: a holder can narrow a token for themselves."""
    token = CODEC.mint(str(uuid.uuid4()), [UserBound(USER)])
    narrowed = attenuate(token, _json({"v": 1, "t": "projects", "names": ["beta"], "ids": [PROJECTS["beta"]]}))
    assert allowed(narrowed) < allowed(token)
    upload_beta = [i for i in allowed(narrowed) if CONTEXTS[i].purpose is Purpose.UPLOAD]
    assert {CONTEXTS[i].project_name for i in upload_beta} == {"beta"}
