// Passkeys in the browser: the server's WebAuthn options (binary fields base64url) turned into
// what navigator.credentials.create/get take, and their answers back into JSON for the API.
'use strict';

const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const unb64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));

export const supported = () => typeof window.PublicKeyCredential === 'function' && Boolean(navigator.credentials);

/** Creates a passkey for `options` ({publicKey}); the credential as JSON for register/finish. */
export async function create(options) {
  const pk = { ...options.publicKey };
  pk.challenge = unb64u(pk.challenge);
  pk.user = { ...pk.user, id: unb64u(pk.user.id) };
  pk.excludeCredentials = (pk.excludeCredentials || []).map((c) => ({ ...c, id: unb64u(c.id) }));
  const c = await navigator.credentials.create({ publicKey: pk });
  return {
    id: c.id, rawId: b64u(c.rawId), type: c.type, extensions: {},
    response: { attestationObject: b64u(c.response.attestationObject), clientDataJSON: b64u(c.response.clientDataJSON) },
  };
}

/** Signs the challenge of `options` ({publicKey}) with a passkey; the assertion as JSON. */
export async function get(options) {
  const pk = { ...options.publicKey };
  pk.challenge = unb64u(pk.challenge);
  pk.allowCredentials = (pk.allowCredentials || []).map((c) => ({ ...c, id: unb64u(c.id) }));
  const c = await navigator.credentials.get({ publicKey: pk });
  return {
    id: c.id, rawId: b64u(c.rawId), type: c.type, extensions: {},
    response: {
      authenticatorData: b64u(c.response.authenticatorData), clientDataJSON: b64u(c.response.clientDataJSON),
      signature: b64u(c.response.signature), userHandle: c.response.userHandle ? b64u(c.response.userHandle) : null,
    },
  };
}

/** Why the browser gave no passkey, in plain words. */
export function failureWords(e) {
  if (e && e.name === 'NotAllowedError') return 'No passkey was used: the request was cancelled or timed out. Try again.';
  if (e && e.name === 'InvalidStateError') return 'This device already holds a passkey for your account.';
  return 'This browser could not use a passkey. Try again, or use another way.';
}
