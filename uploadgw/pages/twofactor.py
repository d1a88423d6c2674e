"""Two-factor settings: the authenticator app (QR code and key as text), security keys, recovery codes.

Everything works without JavaScript except adding a security key, which needs the browser's
WebAuthn API (static/webauthn.js asks for the options, then posts the key's answer in a normal
form). Recovery codes are shown once, on the answer to the request that made them.
"""

from __future__ import annotations

import base64

from aiohttp import web

from uploadgw.http.upload import origin_of
from uploadgw.pages.services.errors import PageError
from uploadgw.pages.common import PAGES, Form, path_param, read_form

BACK = "/account/two-factor"


async def _status(request: web.Request, *, status: int = 200, forms: dict[str, Form] | None = None) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    state = await pages.twofactor.status(pages.session_token(request))
    return await pages.render(request, "two_factor.html", status=status, state=state, forms=forms or {})


async def overview(request: web.Request) -> web.Response:
    return await _status(request)


def _codes_page(pages, request, codes: list[str], *, heading: str):
    return pages.render(request, "recovery_codes.html", codes=codes, heading=heading)


# -- authenticator app ---------------------------------------------------------------------------
async def totp_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    token = pages.session_token(request)
    state = await pages.twofactor.status(token)
    if state.has_totp:
        return pages.redirect(BACK, notice="Your authenticator app is already set up.", kind="info")
    try:
        setup = await pages.twofactor.begin_totp(token, origin_of(request))
    except PageError as exc:
        return pages.redirect(BACK, notice=exc.message, kind="warning")
    qr = "data:image/svg+xml;base64," + base64.b64encode(setup.qr_code_svg.encode()).decode()
    return await pages.render(request, "totp_setup.html", setup=setup, qr=qr)


async def totp_confirm(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    form = Form()
    code = data.get("code", "")
    if not code.strip():
        form.errors["code"] = "Enter the 6-digit code shown by your authenticator app."
    else:
        try:
            codes = await pages.twofactor.confirm_totp(pages.session_token(request), code, origin_of(request))
        except PageError as exc:
            form.errors["code"] = exc.message
        else:
            if codes:
                return await _codes_page(pages, request, codes, heading="Your authenticator app is set up")
            return pages.redirect(BACK, notice="Your authenticator app is set up.")
    return await pages.render(request, "totp_setup.html", status=400, setup=None, qr="", form=form)


async def totp_remove(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    try:
        await pages.twofactor.remove_totp(pages.session_token(request), data.get("password", ""), origin_of(request))
    except PageError as exc:
        return await _status(request, status=exc.status, forms={"totp_remove": Form(errors={"password": exc.message})})
    return pages.redirect(BACK, notice="Your authenticator app was removed.")


# -- security keys and passkeys ------------------------------------------------------------------
def _passkey(values) -> bool:
    """Whether the key page is adding a passkey (`kind=passkey`) rather than a security key."""
    return values.get("kind") == "passkey"


async def key_page(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    return await pages.render(request, "webauthn_add.html", passkey=_passkey(request.query))


async def key_options(request: web.Request) -> web.Response:
    """JSON for webauthn.js: PublicKeyCredentialCreationOptionsJSON from authsvc."""
    pages = request.config_dict[PAGES]
    current = await pages.current(request)
    if current is None:
        return web.json_response({"error": "Your session has ended. Log in again."}, status=401)
    try:
        options = await pages.twofactor.begin_key_registration(pages.session_token(request), origin_of(request),
                                                               passkey=_passkey(request.query))
    except PageError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    return web.Response(text=options, content_type="application/json")


async def key_add(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    form = Form({"label": data.get("label", "").strip()})
    passkey = _passkey(data)
    form.require("label", "Give the security key a name, for example \"blue key\".")
    credential = data.get("credential", "")
    if form.ok and not credential:
        form.errors.setdefault("", "The browser did not send the security key's answer. Adding a security key "
                                   "needs JavaScript: allow it for this site and try again.")
    if form.ok:
        try:
            key, codes = await pages.twofactor.complete_key_registration(
                pages.session_token(request), form.get("label"), credential, origin_of(request), passkey=passkey)
        except PageError as exc:
            form.fail(exc)
        else:
            added = f"{'Passkey' if key.passkey else 'Security key'} \u201c{key.label}\u201d added"
            if codes:
                return await _codes_page(pages, request, codes, heading=added)
            return pages.redirect(BACK, notice=added + ".")
    return await pages.render(request, "webauthn_add.html", status=400, form=form, passkey=passkey)


async def key_rename(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    key_id = path_param(request, "key_id")
    data = await read_form(request)
    label = data.get("label", "").strip()
    try:
        await pages.twofactor.rename_key(pages.session_token(request), key_id, label, origin_of(request))
    except PageError as exc:
        form = Form({"label": label}, {"label": exc.message})
        return await _status(request, status=exc.status, forms={f"rename_{key_id}": form})
    return pages.redirect(BACK, notice=f"The security key is now called \u201c{label}\u201d.")


async def key_remove(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    key_id = path_param(request, "key_id")
    data = await read_form(request)
    try:
        await pages.twofactor.remove_key(pages.session_token(request), key_id, data.get("password", ""),
                                         origin_of(request))
    except PageError as exc:
        return await _status(request, status=exc.status,
                             forms={f"remove_{key_id}": Form(errors={"password": exc.message})})
    return pages.redirect(BACK, notice="The security key was removed.")


# -- recovery codes ------------------------------------------------------------------------------
async def regenerate(request: web.Request) -> web.Response:
    pages = request.config_dict[PAGES]
    await pages.require(request)
    data = await read_form(request)
    try:
        codes = await pages.twofactor.regenerate_codes(pages.session_token(request), data.get("password", ""),
                                                       origin_of(request))
    except PageError as exc:
        return await _status(request, status=exc.status, forms={"codes": Form(errors={"password": exc.message})})
    return await _codes_page(pages, request, codes, heading="New recovery codes")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/two-factor", overview, name="two_factor")
    router.add_get("/two-factor/totp", totp_page, name="totp")
    router.add_post("/two-factor/totp", totp_confirm)
    router.add_post("/two-factor/totp/remove", totp_remove)
    router.add_get("/two-factor/security-keys", key_page, name="security_keys")
    router.add_post("/two-factor/security-keys", key_add)
    router.add_post("/two-factor/security-keys/options", key_options)
    router.add_post("/two-factor/security-keys/{key_id}/rename", key_rename)
    router.add_post("/two-factor/security-keys/{key_id}/remove", key_remove)
    router.add_post("/two-factor/recovery-codes", regenerate, name="recovery_codes")
