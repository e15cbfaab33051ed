// Passkeys (WebAuthn) on the MFA and access pages and the admin's second-factor page. A form with data-passkey-register (adding a passkey)
// or data-passkey-assert (using or removing one) first asks Akeru for the ceremony's options (the
// challenge stays in Akeru's session), lets the browser run it, puts the answer in the form's hidden
// field and then submits the form as the person's click asked. A vend form whose TOTP code was typed is
// sent as it is.
(function () {
  "use strict";
  if (!window.PublicKeyCredential) return;

  function b64urlToBuffer(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), function (c) { return c.charCodeAt(0); }).buffer;
  }
  function bufferToB64url(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  // The browser's own JSON helpers where it has them (WebAuthn level 3); the same by hand otherwise.
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    json.challenge = b64urlToBuffer(json.challenge);
    json.user.id = b64urlToBuffer(json.user.id);
    (json.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuffer(c.id); });
    return json;
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    json.challenge = b64urlToBuffer(json.challenge);
    (json.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuffer(c.id); });
    return json;
  }
  function credentialJSON(credential) {
    if (credential.toJSON) return credential.toJSON();
    var r = credential.response, out = {id: credential.id, rawId: bufferToB64url(credential.rawId),
      type: credential.type, clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment, response: {
        clientDataJSON: bufferToB64url(r.clientDataJSON)}};
    if (r.attestationObject) {
      out.response.attestationObject = bufferToB64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = bufferToB64url(r.authenticatorData);
      out.response.signature = bufferToB64url(r.signature);
      if (r.userHandle) out.response.userHandle = bufferToB64url(r.userHandle);
    }
    return out;
  }

  function say(form, message) {
    var box = form.parentNode.querySelector(".passkey-error") || document.querySelector(".passkey-error");
    if (box) { box.textContent = message; box.hidden = false; } else { window.alert(message); }
  }

  function fetchOptions(form, url, fields) {
    var body = new URLSearchParams(fields);
    body.set("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    return fetch(url, {method: "POST", body: body, credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (answer) {
        return answer.json().then(function (json) {
          if (!answer.ok) throw new Error((json.Error && json.Error.Message) || "Akeru refused to start the passkey check.");
          return json;
        });
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.passkeyDone === "1") return;  // the answer is in: let it go
    var register = form.dataset.passkeyRegister, assert = form.dataset.passkeyAssert;
    if (!register && !assert) return;
    var code = form.querySelector("[name=mfa_code]");
    if (assert && code && code.value.trim()) return;  // a TOTP code was typed: no passkey needed
    event.preventDefault();
    var submitter = event.submitter;
    var ceremony = register
      ? fetchOptions(form, register, {}).then(function (json) {
          return navigator.credentials.create({publicKey: creationOptions(json)});
        })
      : fetchOptions(form, assert, form.dataset.principal ? {principal: form.dataset.principal}
                                   : form.dataset.purpose ? {purpose: form.dataset.purpose} : {}).then(function (json) {
          return navigator.credentials.get({publicKey: requestOptions(json)});
        });
    ceremony.then(function (credential) {
      form.querySelector("[data-passkey-answer]").value = JSON.stringify(credentialJSON(credential));
      form.dataset.passkeyDone = "1";
      if (form.requestSubmit) form.requestSubmit(submitter || undefined); else form.submit();
      form.dataset.passkeyDone = "";
      form.querySelector("[data-passkey-answer]").value = "";
    }).catch(function (error) {
      say(form, error.name === "NotAllowedError" ? "The passkey check was cancelled or timed out." : error.message);
    });
  });
})();
