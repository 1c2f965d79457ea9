// A real OpenID Connect provider issuing DPoP-bound access tokens (RFC 9449) for
// tests/dpop_idp.rs: `oidc-provider` (npm, installed by scripts/test-all.sh into
// target/oidc) on 127.0.0.1:$PORT with features.dpop, one confidential client with
// the client_credentials grant, and a resource indicator whose access tokens are
// ES256 JWTs (RFC 9068) carrying cnf.jkt when the token request had a DPoP proof.
// Prints "ready" once listening.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const resource = process.env.RESOURCE;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'oidc-dpop-es256', use: 'sig', alg: 'ES256' };

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    dpop_bound_access_tokens: true,
    id_token_signed_response_alg: 'ES256',
  }],
  scopes: ['api:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api:read',
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

provider.listen(port, '127.0.0.1', () => console.log('ready'));
