// A real OpenID Connect provider for tests/login.rs: `oidc-provider` (npm, installed
// by scripts/test-all.sh into target/oidc) on 127.0.0.1:$PORT with its development
// login and consent pages (any login name and password sign in; the name is `sub`).
// Two clients: a confidential one ($CLIENT_ID / $CLIENT_SECRET, client_secret_basic)
// and a public one ($PUBLIC_ID, PKCE only), both native loopback clients (RFC 8252
// §7.3: any port of http://127.0.0.1 is accepted, so the proxy's free port need not
// be known in advance), with refresh tokens (rotated on every use) and RP-initiated
// logout. Access tokens live $ACCESS_TTL seconds. ID token claims: sub, email, name,
// groups, and for a login name starting with "big" a 6 KB `bio` (cookie splitting).
//
// Test hooks (plain HTTP on the same port, not part of OpenID Connect):
//   GET  /_test/counts         -> {"refresh": n, "code": n}: token grants that succeeded
//   POST /_test/refuse-refresh -> every later token request answers 400 invalid_grant
// Token requests are delayed by $TOKEN_DELAY_MS so concurrent refreshes overlap.
// Prints "ready" once listening.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accessTtl = Number(process.env.ACCESS_TTL || 3600);
const delay = Number(process.env.TOKEN_DELAY_MS || 0);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'login-test-rs256', use: 'sig', alg: 'RS256' };

const common = {
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/_portcullis/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1/'],
};

const counts = { refresh: 0, code: 0 };
let refuseRefresh = false;

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [
    { ...common, client_id: process.env.CLIENT_ID, client_secret: process.env.CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: process.env.PUBLIC_ID, token_endpoint_auth_method: 'none' },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups', 'bio'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  conformIdTokenClaims: false,
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@example.com`,
      email_verified: true,
      name: `User ${id}`,
      groups: ['staff'],
      ...(id.startsWith('big') ? { bio: 'x'.repeat(6000) } : {}),
    }),
  }),
  ttl: { AccessToken: accessTtl, IdToken: 3600, RefreshToken: 86400, Grant: 86400, Session: 86400 },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
});

provider.on('grant.success', (ctx) => {
  const gt = ctx.oidc.params.grant_type;
  if (gt === 'refresh_token') counts.refresh += 1;
  if (gt === 'authorization_code') counts.code += 1;
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/counts') {
    ctx.body = counts;
    return;
  }
  if (ctx.path === '/_test/refuse-refresh' && ctx.method === 'POST') {
    refuseRefresh = true;
    ctx.body = { refuse: true };
    return;
  }
  if (ctx.path === '/token' && ctx.method === 'POST') {
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (refuseRefresh) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_grant', error_description: 'refused by the test' };
      return;
    }
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => console.log('ready'));
