// A real OpenID provider for daaas's tests: the certified `oidc-provider` package (version pinned
// in package.json / package-lock.json), configured with one confidential client, a few test
// accounts with claims, RS256 keys and the package's own development login pages
// (devInteractions: any password is accepted, the login names an account below).
//
//   node server.mjs            listens on 127.0.0.1:$OP_PORT (0 or unset: a free port) and
//                              prints one line {"issuer": "http://127.0.0.1:<port>"}
//
// Test-only admin endpoints (same port, JSON bodies) change what the provider does:
//   POST /admin/client    {client_id, client_secret, redirect_uris, post_logout_redirect_uris}
//   POST /admin/rotate    {drop_old?: bool}  a new RS256 signing key (published first)
//   POST /admin/accounts/<id>  {claims to merge, e.g. {"groups": ["mx"]}}
//   POST /admin/tamper    {mode: "audience"|"expired"|"signature"|"issuer"|"nonce"|"foreign-key"}
//                         the next token response's ID token is changed that way (re-signed
//                         with the provider's own key except for "signature"/"foreign-key")
//   GET  /admin/stats     {"jwks": <requests for the JWKS so far>, "token": <token requests>}
import { createServer } from 'node:http';
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const port = Number(process.env.OP_PORT || 0);

const accounts = {
  alice: {
    preferred_username: 'alice', name: 'Alice Adams', email: 'alice@example.org',
    groups: ['scientists', 'mx'], instruments: ['MX1'], uid_number: 31001, gid_number: 31001,
  },
  bob: {
    preferred_username: 'bob', name: 'Bob Brown', email: 'bob@example.org',
    groups: ['scientists'], instruments: [], uid_number: 31002, gid_number: 31002,
  },
  carol: {
    preferred_username: 'carol', name: 'Carol Clark', email: 'carol@example.org',
    groups: ['daaas-admins'], instruments: [],
  },
};

let client = {
  client_id: 'daaas', client_secret: 'op-test-secret-not-for-production',
  redirect_uris: ['http://localhost/sign-in/oidc/callback'],
  post_logout_redirect_uris: ['http://localhost/sign-in'],
};

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

let keys = [newKey()];
let tamper = null;
const stats = { jwks: 0, token: 0 };
const cookieKeys = [randomUUID(), randomUUID()];

function b64json(value) {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function resign(idToken, changes, key) {
  const [header, payload] = idToken.split('.').slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
  const input = `${b64json({ ...header, kid: key.kid })}.${b64json({ ...payload, ...changes })}`;
  const signature = sign('sha256', Buffer.from(input), createPrivateKey({ key, format: 'jwk' }));
  return `${input}.${signature.toString('base64url')}`;
}

function tampered(idToken, mode) {
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'audience': return resign(idToken, { aud: 'someone-else' }, keys[0]);
    case 'issuer': return resign(idToken, { iss: 'http://evil.example' }, keys[0]);
    case 'nonce': return resign(idToken, { nonce: 'another-sign-in' }, keys[0]);
    case 'expired': return resign(idToken, { iat: now - 7200, exp: now - 3600 }, keys[0]);
    case 'foreign-key': return resign(idToken, {}, newKey());
    case 'signature': {
      const [header, payload, signature] = idToken.split('.');
      const bytes = Buffer.from(signature, 'base64url');
      bytes[bytes.length >> 1] ^= 0x01;
      return `${header}.${payload}.${bytes.toString('base64url')}`;
    }
    default: throw new Error(`unknown tamper mode ${mode}`);
  }
}

function build() {
  const issuer = `http://${HOST}:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      ...client,
      grant_types: ['authorization_code'], response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys },
    cookies: { keys: cookieKeys },
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'email', 'groups', 'daaas'],
    claims: {
      openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'],
      groups: ['groups'], daaas: ['instruments', 'uid_number', 'gid_number'],
    },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    ttl: { IdToken: 3600, AccessToken: 600, Session: 3600, Interaction: 600, Grant: 3600 },
    async findAccount(ctx, id) {
      if (!Object.hasOwn(accounts, id)) return undefined;
      return {
        accountId: id,
        async claims() { return { sub: id, ...accounts[id] }; },
      };
    },
    // The portal is a first-party client: no consent page, every requested scope is granted.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
      await grant.save();
      return grant;
    },
  });
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') stats.jwks += 1;
    if (ctx.path === '/token') stats.token += 1;
    await next();
    if (ctx.path === '/token' && tamper && ctx.body && ctx.body.id_token) {
      ctx.body = { ...ctx.body, id_token: tampered(ctx.body.id_token, tamper) };
      tamper = null;
    }
  });
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  return provider;
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString() || '{}';
  return JSON.parse(text);
}

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function admin(req, res) {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.method === 'GET' && path === '/admin/stats') return reply(res, 200, stats);
  if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' });
  const body = await readJson(req);
  if (path === '/admin/client') {
    client = { ...client, ...body };
  } else if (path === '/admin/rotate') {
    keys = body.drop_old ? [newKey()] : [newKey(), ...keys];
  } else if (path.startsWith('/admin/accounts/')) {
    const id = decodeURIComponent(path.slice('/admin/accounts/'.length));
    if (!Object.hasOwn(accounts, id)) return reply(res, 404, { error: `no account ${id}` });
    Object.assign(accounts[id], body);
    return reply(res, 200, { [id]: accounts[id] });
  } else if (path === '/admin/tamper') {
    tamper = body.mode || null;
    return reply(res, 200, { tamper });
  } else {
    return reply(res, 404, { error: `unknown ${path}` });
  }
  current = build().callback();
  return reply(res, 200, { kids: keys.map((key) => key.kid), client: client.client_id });
}

let current = null;
const server = createServer((req, res) => {
  if (req.url.startsWith('/admin/')) {
    admin(req, res).catch((error) => reply(res, 500, { error: String(error) }));
    return;
  }
  current(req, res);
});
server.listen(port, HOST, () => {
  current = build().callback();
  console.log(JSON.stringify({ issuer: `http://${HOST}:${server.address().port}` }));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
