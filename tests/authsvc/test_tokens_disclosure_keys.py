"""A trusted scanner's keys (authsvc/tokens/scannerkeys.py) fetched from a real key server on
loopback: which key verifies a report, how long keys are cached, and that neither an unsigned
flood of made-up key ids nor a burst of reports turns into a flood of fetches."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.errors import InvalidArgument, Unavailable
from authsvc.tokens.scannerkeys import REFETCH_AFTER, ReportVerifier, ScannerKeys, TrustedScanner
from tests.keyserver import KeyServer, new_key, sign

BODY = b'[{"token": "pypi-x", "type": "t", "url": "https://example.org/x"}]'


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys():
    with KeyServer().running() as server:
        yield server


async def test_keys_are_cached_for_their_ttl_and_unknown_ids_refetch_at_most_every_30_seconds(keys):
    ticks = Ticks()
    scanner = ScannerKeys(TrustedScanner("s", keys.url), ttl=300, monotonic=ticks)
    key_id, _ = new_key(keys)
    assert (await scanner.lookup(key_id)).current and keys.fetches == 1
    assert await scanner.lookup(key_id) and keys.fetches == 1  # cached
    for made_up in ("a", "b", "c"):
        assert await scanner.lookup(made_up) is None
    assert keys.fetches == 1  # unknown ids within REFETCH_AFTER of the last fetch: no fetch

    rotated, _ = new_key(keys)
    ticks.now += REFETCH_AFTER
    assert await scanner.lookup(rotated) is not None and keys.fetches == 2  # a new key is found
    assert await scanner.lookup(key_id) is None  # and the withdrawn one is gone
    ticks.now += 300
    assert await scanner.lookup(rotated) is not None and keys.fetches == 3  # the ttl ran out


async def test_concurrent_lookups_share_one_fetch(keys):
    scanner = ScannerKeys(TrustedScanner("s", keys.url), ttl=300)
    key_id, _ = new_key(keys)
    found = await asyncio.gather(*(scanner.lookup(key_id) for _ in range(50)))
    assert all(found) and keys.fetches == 1


async def test_only_a_current_p256_key_of_a_trusted_scanner_verifies(keys):
    verifier = ReportVerifier((TrustedScanner("Example", keys.url),), ttl=0)
    key_id, private = new_key(keys)
    assert (await verifier.signer(BODY, key_id, sign(private, BODY))).name == "Example"

    other = ec.generate_private_key(ec.SECP384R1())  # a key on another curve is never used
    keys.publish(("p384", other, True))
    with pytest.raises(InvalidArgument) as refused:
        await verifier.signer(BODY, "p384", sign(other, BODY))
    assert refused.value.reason == "key_unusable"


async def test_no_scanner_trusted_means_no_report_believed(keys):
    key_id, private = new_key(keys)
    with pytest.raises(InvalidArgument) as refused:
        await ReportVerifier((), ttl=0).signer(BODY, key_id, sign(private, BODY))
    assert refused.value.reason == "unknown_key"


@pytest.mark.parametrize("document", [b"not json", b'{"keys": []}', b'{"public_keys": [{"key": 1}]}',
                                      b'{"public_keys": {}}'])
async def test_a_key_list_that_cannot_be_read_is_unavailable(keys, document):
    keys.document = document
    with pytest.raises(Unavailable, match="could not be fetched"):
        await ScannerKeys(TrustedScanner("s", keys.url), ttl=0).lookup("k")


async def test_an_unreachable_key_server_is_unavailable():
    from gatehouse.infra.redis_embed import free_port

    scanner = ScannerKeys(TrustedScanner("s", f"http://127.0.0.1:{free_port()}/keys"), ttl=0)
    with pytest.raises(Unavailable, match="could not reach it"):
        await scanner.lookup("k")
