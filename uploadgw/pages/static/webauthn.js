/* Gatehouse security keys: the only script of the account pages (no inline script, CSP script-src 'self').
 *
 * A form marked with data-options-url gets the WebAuthn options from the server (POST with the
 * form's CSRF token), asks the browser for the key (navigator.credentials.create or .get), puts
 * the key's answer (the W3C JSON form) in the form's hidden "credential" field and submits the
 * form normally. The server does every check; this file only carries bytes.
 */
(function () {
  "use strict";

  function toBuffer(value) {
    var text = String(value).replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) { text += "="; }
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = toBuffer(item.id);
      return copy;
    });
  }

  function creationOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = withIds(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = withIds(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") { return credential.toJSON(); }
    var response = credential.response;
    var out = { id: credential.id, rawId: toBase64url(credential.rawId), type: credential.type,
                clientExtensionResults: credential.getClientExtensionResults(), response: {} };
    if (credential.authenticatorAttachment) { out.authenticatorAttachment = credential.authenticatorAttachment; }
    ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"].forEach(function (name) {
      if (response[name]) { out.response[name] = toBase64url(response[name]); }
    });
    if (typeof response.getTransports === "function") { out.response.transports = response.getTransports(); }
    return out;
  }

  function say(form, text) {
    var status = form.querySelector("#webauthn-status");
    if (status) { status.textContent = text; }
  }

  async function fetchOptions(form) {
    var token = form.querySelector('input[name="csrf_token"]').value;
    var reply = await fetch(form.getAttribute("data-options-url"), {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": token, "Accept": "application/json" }
    });
    var data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    if (!reply.ok || !data) {
      throw new Error((data && data.error) || "The server could not start the security key check. Reload the page and try again.");
    }
    return data;
  }

  function attach(form, ceremony) {
    form.addEventListener("submit", async function (event) {
      var field = form.querySelector('input[name="credential"]');
      if (field.value) { return; }
      var label = form.querySelector('input[name="label"]');
      if (label && !label.value.trim()) { return; }  /* the server explains what is missing */
      event.preventDefault();
      if (!window.PublicKeyCredential || !navigator.credentials) {
        say(form, "This browser does not support security keys. Use another method or another browser.");
        return;
      }
      var button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      try {
        say(form, "Touch or unlock your security key now.");
        var options = await fetchOptions(form);
        var credential = await ceremony(options);
        field.value = JSON.stringify(credentialJSON(credential));
        say(form, "Checking your security key\u2026");
        form.submit();
      } catch (error) {
        field.value = "";
        button.disabled = false;
        var text = error && error.name === "NotAllowedError"
          ? "The security key did not answer, or the request was cancelled. Try again."
          : (error && error.message) || "The security key could not be used. Try again.";
        say(form, text);
      }
    });
  }

  /* The browser's autofill UI (conditional mediation): the username field, marked
   * autocomplete="username webauthn", offers this site's passkeys; choosing one submits the passkey
   * form. Where the browser lacks it, the "Sign in with a passkey" button does the same. */
  async function offerInAutofill(form) {
    if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) { return; }
    try {
      if (!(await PublicKeyCredential.isConditionalMediationAvailable())) { return; }
      var options = await fetchOptions(form);
      var credential = await navigator.credentials.get({ mediation: "conditional", publicKey: requestOptions(options) });
      form.querySelector('input[name="credential"]').value = JSON.stringify(credentialJSON(credential));
      form.submit();
    } catch (error) { /* the button still works */ }
  }

  var register = document.getElementById("webauthn-register-form");
  if (register) {
    attach(register, function (json) { return navigator.credentials.create({ publicKey: creationOptions(json) }); });
  }
  var login = document.getElementById("webauthn-login-form");
  if (login) {
    attach(login, function (json) { return navigator.credentials.get({ publicKey: requestOptions(json) }); });
  }
  var passkey = document.getElementById("passkey-login-form");
  if (passkey) {
    attach(passkey, function (json) { return navigator.credentials.get({ publicKey: requestOptions(json) }); });
    offerInAutofill(passkey);
  }
  document.documentElement.classList.add("js");
})();
