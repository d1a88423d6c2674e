"""Hypothesis sends generated raw HTTP requests to a real gateway (with its real authsvc) and
checks the one invariant of the public edge: never a 5xx while every dependency is up, and only
a 503 while authsvc is down (or, for the history pages, auditsvc, which this harness does not run).

Requests are built from the gateway's own router (every route, its variables filled with valid
and odd values), headers with bytes that are not UTF-8, and bodies: random bytes, forms, and
multipart bodies with odd boundaries, part headers and encodings; the Content-Length is right,
wrong, missing or not a number. Each request goes over a plain socket from a worker thread while
the gateway serves on the test's event loop; the gateway's own metrics must count no 500 either
(a client that hung up sees no answer). Derandomized: the same examples on every run."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import socket
import urllib.parse

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.uploadgw.conftest import PASSWORD, make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, post_upload, twine_fields
from tests.uploadgw.test_never_500 import exchange_full
from uploadgw.app import METRICS

# GATEHOUSE_FUZZ_EXAMPLES=5000 explores further, with fresh random examples (CI runs the fixed 200).
EXAMPLES = int(os.environ.get("GATEHOUSE_FUZZ_EXAMPLES", "200"))
DERANDOMIZE = "GATEHOUSE_FUZZ_EXAMPLES" not in os.environ
PROJECT = "fuzz-pkg"
# Form fields the pages read, and query keys they look at.
PAGE_FIELDS = [b"username", b"password", b"email", b"username_or_email", b"new_password", b"new_password_confirm",
               b"password_confirm", b"current_password", b"code", b"recovery_code", b"method", b"credential", b"token",
               b"next", b"description", b"expires", b"scope", b"projects", b"role", b"label", b"reason",
               b"confirm_name", b"confirm_version", b"name", b"t", b"k"]
QUERY_KEYS = [b"format", b"next", b"token", b"project", b"tag", b"actor", b"ip", b"user", b"page", b"before"]
ODD_VALUES = [b"", b"0", b"-1", b"99999999999999999999999", b"2026-13-45", b"owner", b"maintainer", b"all",
              b"project", PROJECT.encode(), b"1.0", b"%00", b"%ff", b"x" * 5000, b"null", b"[]", b"{}"]


@dataclasses.dataclass(frozen=True)
class Target:
    """What the examples may use of the running gateway: its routes, real values for route
    variables, a browser's cookies and CSRF tokens, an API token, a wheel and twine's fields for it."""

    routes: list[tuple[str, str]]
    known: dict[str, list[bytes]]
    secrets: dict[str, bytes]
    wheel: bytes
    fields: list[tuple[bytes, bytes]]


def route_templates(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route of the gateway and its page sub-applications."""
    out = []
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            out += route_templates(resource._app)  # noqa: SLF001 - aiohttp has no public accessor
            continue
        canonical = resource.canonical + ("/{path}" if isinstance(resource, web.StaticResource) else "")
        out += [(route.method, canonical) for route in resource]
    return sorted(set(out))


HEADER_BYTES = "".join(map(chr, [*range(0x20, 0x7f), *range(0x80, 0x100)]))


def line_bytes(max_size: int = 40):
    """Bytes a header value may hold (no controls), often not UTF-8."""
    return st.text(HEADER_BYTES, max_size=max_size).map(lambda t: t.encode("latin-1"))


def text_bytes(max_size: int = 30):
    """Unicode text (no control characters) as UTF-8, lone surrogates too."""
    return st.text(st.characters(exclude_categories=("Cc",)), max_size=max_size).map(
        lambda s: s.encode("utf-8", "surrogatepass"))


def odd(max_size: int = 40):
    """A header value: mostly what a parser lets through, sometimes controls (which it refuses)."""
    no_lines = lambda b: b.replace(b"\r", b"").replace(b"\n", b"")  # noqa: E731
    return st.one_of(line_bytes(max_size), line_bytes(max_size), text_bytes(max_size).map(no_lines),
                     st.binary(max_size=max_size).map(no_lines))


@st.composite
def segments(draw, known: list[bytes]) -> bytes:
    raw = odd(20).map(lambda b: b.replace(b"/", b"").replace(b" ", b"").replace(b"?", b"").replace(b"#", b""))
    return draw(st.one_of(
        st.sampled_from(known or [b"x"]), st.sampled_from(known or [b"x"]),
        st.sampled_from([b"", b"..", b"%2e%2e", b"%ff%fe", b"%00", b"a%2Fb", b"%C3%A9", b"x" * 300]),
        text_bytes().map(lambda b: urllib.parse.quote_from_bytes(b, safe="").encode()),
        raw,
    ))


@st.composite
def multipart_body(draw, boundary: bytes, wheel: bytes) -> bytes:
    body = bytearray(draw(st.sampled_from([b"", b"preamble\r\n", b"\r\n"])))
    for _ in range(draw(st.integers(0, 4))):
        body += b"--" + boundary + draw(st.sampled_from([b"\r\n", b"  \r\n", b"\n", b"x\r\n"]))
        name = draw(st.one_of(st.sampled_from([b"content", b":action", b"name", b"version", b"protocol_version",
                                               b"gpg_signature", b"sha256_digest", b"metadata_version"]), odd(20)))
        disposition = draw(st.sampled_from([
            b'Content-Disposition: form-data; name="%s"', b"Content-Disposition: form-data; name=%s",
            b'Content-Disposition: form-data; name="%s"; filename="x.whl"',
            b"Content-Disposition: form-data; name*=utf-8''%s", b'Content-Disposition: attachment; name="%s"',
            b'content-disposition: FORM-DATA; name="%s"; filename*=UTF-8\'\'%ff.whl', b"X: %s"]))
        body += disposition.replace(b"%s", name.replace(b'"', b"")) + b"\r\n"
        for _ in range(draw(st.integers(0, 2))):
            body += draw(st.sampled_from([b"Content-Type", b"Content-Transfer-Encoding", b"Content-Length",
                                          b"X-Other", b"\xff\xfe", b"No colon"]))
            body += draw(st.sampled_from([b": ", b":", b""])) + draw(st.one_of(
                odd(30), st.sampled_from([b"base64", b"quoted-printable", b"multipart/mixed; boundary=zz",
                                          b"text/plain; charset=latin-1", b"-1", b"a" * 9000]))) + b"\r\n"
        body += b"\r\n" + draw(st.one_of(st.binary(max_size=60), st.just(wheel),
                                         st.sampled_from([b"file_upload", b"1", b"2.1", PROJECT.encode()]))) + b"\r\n"
    body += draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"--" + boundary + b"--", b"", b"--" + boundary]))
    return bytes(body)


@st.composite
def twine_body(draw, boundary: bytes, target: Target) -> bytes:
    """twine's own fields for the wheel, one to three of them changed, dropped or repeated."""
    fields = list(target.fields)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(fields) - 1))
        name, value = fields[index]
        change = draw(st.sampled_from(["value", "drop", "repeat", "name"]))
        if change == "value":
            fields[index] = (name, draw(st.one_of(st.sampled_from(ODD_VALUES), text_bytes(60), st.binary(max_size=30))))
        elif change == "drop":
            del fields[index]
        elif change == "repeat":
            fields.insert(index, (name, draw(st.sampled_from(ODD_VALUES))))
        else:
            fields[index] = (draw(odd(20)).replace(b'"', b""), value)
        if not fields:
            break
    body = bytearray()
    for name, value in fields:
        body += b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary, name, value)
    filename = draw(st.one_of(st.sampled_from([b"fuzz_pkg-1.0-py3-none-any.whl", b"fuzz_pkg-1.1-py3-none-any.whl",
                                               b"../x.whl", b"fuzz-pkg-1.0.tar.gz", b"", b"x.exe"]), odd(30)))
    content = draw(st.one_of(st.just(target.wheel), st.binary(max_size=100), st.just(target.wheel[:200])))
    body += (b'--%s\r\nContent-Disposition: form-data; name="content"; filename="%s"\r\n'
             b"Content-Type: application/octet-stream\r\n\r\n" % (boundary, filename.replace(b'"', b""))) + content
    return bytes(body + b"\r\n--%s--\r\n" % boundary)


@st.composite
def page_form(draw, target: Target) -> bytes:
    """A urlencoded form of fields the pages read, with a CSRF token (valid, mostly)."""
    quote = lambda b: urllib.parse.quote_from_bytes(b, safe="").encode()  # noqa: E731
    pairs = [b"csrf_token=" + draw(st.sampled_from([target.secrets["session_csrf"], target.secrets["anon_csrf"],
                                                    b"", b"x"]))]
    for _ in range(draw(st.integers(0, 5))):
        value = draw(st.one_of(st.sampled_from(ODD_VALUES), st.sampled_from([
            target.secrets["username"], PASSWORD.encode(), b"a@example.org", target.known["token_id"][0]]),
            text_bytes(40), st.binary(max_size=30)))
        pairs.append(draw(st.sampled_from(PAGE_FIELDS)) + b"=" + quote(value))
    return b"&".join(draw(st.permutations(pairs)))


@st.composite
def requests(draw, target: Target) -> bytes:
    routes, known, secrets, wheel = target.routes, target.known, target.secrets, target.wheel
    method, template = draw(st.sampled_from(routes))
    method = draw(st.sampled_from([method.encode()] * 12 + [b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"get",
                                                            b"G\xffT"]))

    def fill(match: re.Match) -> bytes:
        return draw(segments(known.get(match.group(1), [])))

    path = re.sub(rb"\{(\w+)\}", fill, template.encode())
    if draw(st.booleans()):
        path += b"?" + b"&".join(draw(st.lists(st.one_of(
            st.sampled_from([b"format=json", b"next=/account/", b"next=//evil.example", b"token=x", b"format"]),
            st.tuples(st.sampled_from(QUERY_KEYS), st.one_of(st.sampled_from(ODD_VALUES), text_bytes(20))).map(
                lambda kv: kv[0] + b"=" + urllib.parse.quote_from_bytes(kv[1], safe="").encode()),
            odd(20).map(lambda b: urllib.parse.quote_from_bytes(b, safe="=&").encode())), max_size=3)))
        if draw(st.integers(0, 9)) == 0:
            path += draw(odd(20).map(lambda b: b.replace(b" ", b"").replace(b"#", b"")))
    boundary = draw(st.one_of(st.just(b"b0undary"), odd(20).map(lambda b: b.replace(b";", b"").replace(b'"', b"")),
                              st.just(b"x" * 80)))
    kind = draw(st.sampled_from(["none", "bytes", "form", "multipart", "page", "page", "twine", "twine"]))
    body = {"none": lambda: b"", "bytes": lambda: draw(st.binary(max_size=200)),
            "form": lambda: b"&".join(draw(st.lists(st.one_of(
                st.sampled_from([b"csrf_token=" + secrets["anon_csrf"], b"csrf_token=" + secrets["session_csrf"],
                                 b"username=" + secrets["username"], b"password=" + PASSWORD.replace(" ", "+").encode(),
                                 b"next=/account/", b"token=x", b"email=a%40example.org"]),
                odd(30)), max_size=5))),
            "multipart": lambda: draw(multipart_body(boundary, wheel)),
            "page": lambda: draw(page_form(target)), "twine": lambda: draw(twine_body(boundary, target))}[kind]()
    content_types = {"none": [b"text/plain"], "bytes": [b"application/octet-stream"],
                     "form": [b"application/x-www-form-urlencoded", b"application/x-www-form-urlencoded; charset=\xff"],
                     "multipart": [b"multipart/form-data; boundary=" + boundary,
                                   b'multipart/form-data; boundary="' + boundary + b'"',
                                   b"multipart/form-data; boundary=" + boundary + b"; charset=latin-1",
                                   b"multipart/mixed; boundary=" + boundary, b"multipart/form-data"]}
    content_types["page"] = content_types["form"]
    content_types["twine"] = [b"multipart/form-data; boundary=" + boundary]
    content_types = content_types[kind]
    headers = [(b"Host", draw(st.one_of(st.sampled_from([b"127.0.0.1"] * 4 + [b"localhost:8000", b"[::1"]), odd(20))))]
    candidates = {
        b"Content-Type": st.one_of(st.sampled_from(content_types), odd()),
        b"Authorization": st.one_of(
            st.sampled_from([b"Basic " + base64.b64encode(b"__token__:" + secrets["token"]),
                             b"token " + secrets["token"], b"Basic " + base64.b64encode(b"__token__:\xff\xfe"),
                             b"Basic " + base64.b64encode(b"someone:pw"), b"Basic"]),
            odd().map(lambda b: b"token " + b), odd().map(lambda b: b"Bearer " + b),
            odd().map(lambda b: b"Basic " + base64.b64encode(b)), odd()),
        b"Cookie": st.one_of(st.sampled_from([secrets["anon_cookie"], secrets["session_cookie"],
                                              secrets["anon_cookie"] + b"; " + secrets["session_cookie"]]),
                             odd().map(lambda b: b"gh_session=" + b), odd().map(lambda b: b"gh_csrf=" + b), odd()),
        b"X-CSRF-Token": st.one_of(st.sampled_from([secrets["anon_csrf"], secrets["session_csrf"]]), odd()),
        b"Origin": st.one_of(st.sampled_from([b"null", b"http://127.0.0.1", b"http://[", b"http://a:b:c",
                                              b"https://evil.example"]), odd()),
        b"User-Agent": odd(), b"Accept": st.one_of(st.sampled_from([
            b"application/vnd.pypi.simple.v1+json", b"application/vnd.pypi.simple.v1+html;q=abc", b"*/*"]), odd()),
        b"If-None-Match": odd(), b"X-Forwarded-For": odd(), b"Range": st.one_of(st.just(b"bytes=0-1"), odd()),
        b"If-Modified-Since": odd(), b"Accept-Encoding": st.one_of(st.just(b"gzip, br"), odd()),
        b"Referer": odd(), b"Expect": st.one_of(st.just(b"100-continue"), odd()),
    }
    for name in draw(st.lists(st.sampled_from(sorted(candidates)), max_size=6, unique=True)):
        headers.append((name, draw(candidates[name])))
    if kind in ("page", "twine") and draw(st.integers(0, 4)):  # mostly the way a browser or twine sends it
        headers = [(name, value) for name, value in headers if name not in (b"Content-Type", b"Cookie", b"Authorization")]
        headers.append((b"Content-Type", content_types[0]))
        if kind == "page":
            headers.append((b"Cookie", secrets["session_cookie"]))
        else:
            headers.append((b"Authorization", b"Basic " + base64.b64encode(b"__token__:" + secrets["token"])))
    elif kind != "none" and not any(name == b"Content-Type" for name, _ in headers) and draw(st.booleans()):
        headers.append((b"Content-Type", content_types[0]))
    length = draw(st.sampled_from(["right"] * 8 + ["missing", "short", "long", "junk", "chunked", "chunked"]))
    if length == "chunked":
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        headers.append((b"Transfer-Encoding", b"chunked"))
    elif length != "missing":
        value = {"right": str(len(body)).encode(), "short": str(max(len(body) - 3, 0)).encode(),
                 "long": str(len(body) + 3).encode(), "junk": draw(st.sampled_from([b"-1", b"abc", b"1e3", b" 5"]))}
        headers.append((b"Content-Length", value[length]))
    head = method + b" " + path + b" HTTP/1.1\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return head + b"Connection: close\r\n\r\n" + body


def status_of(port: int, data: bytes) -> int | None:
    """Send, read the status line: its code, or None when the gateway only closed. A request whose
    body is shorter than it said is half-closed after a moment, as a client that gave up."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the gateway answered and closed before reading everything
            pass
        answer = b""
        while not re.search(rb"^HTTP/1\.[01] [2-5]\d\d [^\r\n]*\r\n", answer, re.M):
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                if sock.gettimeout() == 10:
                    break
                sock.settimeout(10)
                sock.shutdown(socket.SHUT_WR)
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    statuses = [int(code) for code in re.findall(rb"^HTTP/1\.[01] (\d{3})", answer, re.M)]
    return statuses[-1] if statuses else None


async def _login(port: int, username: str) -> dict[str, bytes]:
    """A browser's cookies and CSRF tokens, anonymous and logged in (for examples that get past CSRF)."""
    _, _, headers, page = await exchange_full(port, b"GET /account/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                    b"Connection: close\r\n\r\n")
    anon_cookie = next(line.split(":", 1)[1].split(";")[0].strip() for line in headers
                       if line.lower().startswith("set-cookie:") and "gh_csrf=" in line).encode()
    anon_csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1)
    form = b"csrf_token=" + anon_csrf + b"&username=" + username.encode() + b"&password=" + \
        PASSWORD.replace(" ", "+").encode()
    status, _, headers, _ = await exchange_full(port, (
        b"POST /account/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: " + anon_cookie +
        b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(form) + form))
    assert status == 303
    session_cookie = next(line.split(":", 1)[1].split(";")[0].strip() for line in headers
                          if line.lower().startswith("set-cookie:") and "gh_session=" in line).encode()
    _, _, _, page = await exchange_full(port, b"GET /account/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                              b"Cookie: " + anon_cookie + b"; " + session_cookie + b"\r\n\r\n")
    session_csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1)
    return {"anon_cookie": anon_cookie, "anon_csrf": anon_csrf, "session_cookie": anon_cookie + b"; " + session_cookie,
            "session_csrf": session_csrf, "username": username.encode()}


def server_errors(gw) -> dict[str, float]:
    """5xx answers per (route, status) from the gateway's own metrics."""
    out = {}
    for metric in gw.running.app[METRICS].registry.collect():
        for sample in metric.samples:
            if sample.name == "uploadgw_http_requests_total" and sample.labels["status"].startswith("5"):
                out[f'{sample.labels["route"]} {sample.labels["status"]}'] = sample.value
    return out


async def fuzz_setup(gw, tmp_path):
    up = await make_uploader(gw.auth, own=(PROJECT,))
    wheel = make_wheel(tmp_path, PROJECT, "1.0")
    status, reason, _ = await post_upload(gw, wheel, up.token)
    assert status == 200, reason
    async with gw.http.get(f"{gw.url}/simple/{PROJECT}/", headers={"Authorization": basic(up.token)}) as resp:
        href = re.search(r'href="[./]*(files/[^"#]+)', await resp.text()).group(1)
    parts = href.split("/")[1:]
    known = {"a": [parts[0].encode()], "b": [parts[1].encode()] if len(parts) == 4 else [b"00"],
             "key": [parts[-2].encode()], "filename": [parts[-1].encode(), parts[-1].encode() + b".metadata"],
             "project": [PROJECT.encode(), b"Fuzz_Pkg"], "name": [PROJECT.encode()], "version": [b"1.0"],
             "username": [up.username.encode()], "token_id": [up.token_id.encode()],
             "action": [b"yank", b"unyank", b"delete"], "path": [b"site.css", b"webauthn.js", b"..%2fapp.py"]}
    secrets = {**await _login(gw.running.port, up.username), "token": up.token.encode()}
    fields = [(name.encode(), value.encode()) for name, value in twine_fields(wheel)]
    return Target(route_templates(gw.running.app), known, secrets, wheel.read_bytes(), fields)


def run_examples(port: int, strategy, *, allowed, examples: int) -> list:
    """Run the examples (in a worker thread); every answer's status must be `allowed`."""
    seen = []

    @settings(max_examples=examples, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(raw: bytes) -> None:
        status = status_of(port, raw)
        seen.append(status)
        assert allowed(status, raw), (status, raw[:2000])

    check()
    return seen


@pytest.fixture(params=[{}, {"index_private": True, "trusted_proxy_hops": 1}], ids=["defaults", "private-behind-proxy"])
def gw_overrides(request):
    """The gateway as it starts by default, and with a private index behind one proxy (tokens on
    every index read, X-Forwarded-For believed)."""
    return request.param


def needs_auditsvc(raw: bytes) -> bool:
    """The history pages ask auditsvc, which this harness does not run: a 503 there is right."""
    target = raw.split(b"\r\n", 1)[0]
    return b"/history" in target or b"/admin/log" in target


async def test_no_request_gets_a_5xx(gw, tmp_path):
    target = await fuzz_setup(gw, tmp_path)
    seen = await asyncio.to_thread(
        run_examples, gw.running.port, requests(target), examples=EXAMPLES,
        allowed=lambda status, raw: status is None or status < 500 or (status == 503 and needs_auditsvc(raw)))
    assert all(key.endswith(" 503") for key in server_errors(gw)), server_errors(gw)
    assert len({status for status in seen if status is not None}) > 5  # the requests reach many answers


async def test_with_authsvc_down_the_only_5xx_is_503(gw, tmp_path):
    target = await fuzz_setup(gw, tmp_path)
    await gw.auth.running.stop(grace=0)
    status, _, _ = await post_upload(gw, make_wheel(tmp_path, PROJECT, "2.0"), target.secrets["token"].decode())
    assert status == 503  # authsvc is down indeed
    await asyncio.to_thread(run_examples, gw.running.port, requests(target),
                            allowed=lambda status, raw: status is None or status < 500 or status == 503,
                            examples=EXAMPLES // 2)
    assert all(key.endswith(" 503") for key in server_errors(gw)), server_errors(gw)
