// Test-only OpenID Provider for the Go integration tests of caddy-identity.
//
// Usage: node provider.mjs <config.json>
//
// The config file is written by the Go harness (provider_test.go):
//   {
//     "port": 0,                       // 0: pick a free loopback port
//     "readyFile": "/tmp/.../ready.json",
//     "jwks": {"keys": [...]},         // private signing keys; the first key per alg signs, all are published
//     "clientJWKS": {"keys": [...]},   // optional public keys of the private_key_jwt client
//     "accessTokenTTL": 3600,          // optional, seconds
//     "deviceCodeTTL": 600,            // optional, seconds: lifetime of device flow codes
//     "webClient": {                   // optional: client "web-client" of a browser sign-in at Caddy, with the
//       "redirectURI": "...",          // provider's interactive login and consent pages (devInteractions) instead
//       "postLogoutRedirectURI": "...",// of the automatic ones, and back-channel logout
//       "backchannelLogoutURI": "..."
//     }
//   }
//
// Besides oidc-provider's own grants it serves RFC 8693 token exchange to client test-client-exchange (see
// registerTokenExchange).
//
// Once listening it writes readyFile ({"issuer","port","version","node","pid"}) and logs one line per
// request to stdout. It exits on SIGTERM/SIGINT.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

import { createLocalJWKSet, jwtVerify } from 'jose';
import Provider from 'oidc-provider';
import { errors as oidcErrors } from 'oidc-provider';

const require = createRequire(import.meta.url);
const { version } = require('oidc-provider/package.json');

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node provider.mjs <config.json>');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
const host = '127.0.0.1';
const accessTokenTTL = cfg.accessTokenTTL || 3600;
const deviceCodeTTL = cfg.deviceCodeTTL || 600;
const defaultAccount = 'alice';

const RESOURCE_SCOPES = 'api:read api:write';
const REDIRECT_URI = 'http://127.0.0.1/callback';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// DPoP (RFC 9449): test-client-dpop must send a proof with every token request (dpop_bound_access_tokens);
// test-client-dpop-nonce must put a server nonce in its proofs at the token endpoint, and so must the user of its
// access tokens at the userinfo endpoint. Other clients may use DPoP without a nonce (the provider still sends
// DPoP-Nonce headers, since nonces are enabled).
const DPOP_CLIENT = 'test-client-dpop';
const DPOP_NONCE_CLIENT = 'test-client-dpop-nonce';
const nonceClientTokens = new Set();

// Resource indicators decide the access token format:
//   contains "opaque" → opaque token; contains "es256" → JWT signed ES256; anything else → JWT signed
//   RS256. The JWT aud is the indicator itself. Contains "short" → 5 s lifetime.
function resourceServerInfo(indicator) {
  const lower = indicator.toLowerCase();
  const info = {
    scope: RESOURCE_SCOPES,
    audience: indicator,
    accessTokenTTL: lower.includes('short') ? 5 : accessTokenTTL,
  };
  if (lower.includes('opaque')) {
    info.accessTokenFormat = 'opaque';
  } else {
    info.accessTokenFormat = 'jwt';
    info.jwt = { sign: { alg: lower.includes('es256') ? 'ES256' : 'RS256' } };
  }
  return info;
}

const clients = [
  {
    // Confidential client; oidc-provider accepts client_secret_basic and client_secret_post for it.
    client_id: 'test-client',
    client_secret: 'test-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  },
  {
    client_id: 'test-client-post',
    client_secret: 'test-secret-post',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  },
  {
    // Public client for authorization code + PKCE and the device flow.
    client_id: 'test-public',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  },
];
clients.push(
  {
    client_id: DPOP_CLIENT,
    client_secret: 'test-secret-dpop',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    dpop_bound_access_tokens: true,
  },
  {
    client_id: DPOP_NONCE_CLIENT,
    client_secret: 'test-secret-dpop-nonce',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'authorization_code'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  },
  {
    // Signed responses: userinfo as application/jwt (OIDC Core §5.3.2) and, when asked with Accept:
    // application/token-introspection+jwt, introspection as an RFC 9701 JWT, both ES256. (Every other client
    // also gets RS256 JWT introspection when it asks: RS256 is oidc-provider's default for the metadata.)
    client_id: 'test-client-signed',
    client_secret: 'test-secret-signed',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'authorization_code'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    userinfo_signed_response_alg: 'ES256',
    introspection_signed_response_alg: 'ES256',
  },
);
// RFC 8693 token exchange, which oidc-provider does not have built in (see registerTokenExchange): test-client-exchange
// trades an access token of this provider for one of another resource, for the same subject.
const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const EXCHANGE_CLIENT = 'test-client-exchange';
// exchangeClaims holds the claims an exchanged access token adds (act), until extraTokenClaims puts them in it.
const exchangeClaims = new WeakMap();
clients.push({
  client_id: EXCHANGE_CLIENT,
  client_secret: 'test-secret-exchange',
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: [TOKEN_EXCHANGE_GRANT, 'client_credentials'],
  response_types: [],
  redirect_uris: [],
});
// Browser sign-in at Caddy (webClient): a confidential web client whose sessions end by back-channel logout.
const WEB_CLIENT = 'web-client';
if (cfg.webClient) {
  clients.push({
    client_id: WEB_CLIENT,
    client_secret: 'web-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [cfg.webClient.redirectURI],
    post_logout_redirect_uris: [cfg.webClient.postLogoutRedirectURI],
    backchannel_logout_uri: cfg.webClient.backchannelLogoutURI,
    backchannel_logout_session_required: true,
  });
}
if (cfg.clientJWKS && Array.isArray(cfg.clientJWKS.keys) && cfg.clientJWKS.keys.length > 0) {
  clients.push({
    client_id: 'test-client-jwt',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: cfg.clientJWKS.keys[0].alg || 'RS256',
    jwks: cfg.clientJWKS,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  });
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

const configuration = {
  clients,
  jwks: cfg.jwks,
  cookies: { keys: ['caddy-identity-integration-cookie-key'] },
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: `${id}@example.test`, email_verified: true, name: id,
        };
      },
    };
  },
  interactions: {
    url(ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  enabledJWA: {
    // oidc-provider's default is ES256 and EdDSA; identity.NewDPoPKey makes ES256 or RS256 keys.
    dPoPSigningAlgValues: ['ES256', 'RS256', 'EdDSA'],
  },
  features: {
    devInteractions: { enabled: !!cfg.webClient },
    backchannelLogout: { enabled: !!cfg.webClient },
    dPoP: {
      enabled: true,
      nonceSecret: randomBytes(32),
      requireNonce(ctx) {
        if (ctx.oidc?.client?.clientId === DPOP_NONCE_CLIENT) {
          return true; // token endpoint: the client is authenticated before the proof is checked
        }
        // userinfo: the client is not known yet, the token is.
        const m = /^DPoP\s+(\S+)$/i.exec(ctx.get('authorization') || '');
        return !!m && nonceClientTokens.has(m[1]);
      },
    },
    jwtUserinfo: { enabled: true },
    jwtIntrospection: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy() {
        return true;
      },
    },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    registration: { enabled: true },
    registrationManagement: { enabled: true },
    deviceFlow: {
      enabled: true,
      userCodeInputSource(ctx, form, out, err) {
        ctx.body = page('Device sign-in', `${err ? '<p class="error">invalid code</p>' : ''}${form}`);
      },
      userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = page('Confirm device', `<p>${userCode}</p>${form}`);
      },
      successSource(ctx) {
        ctx.body = page('Device sign-in done', '<p>ok</p>');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource() {
        return undefined;
      },
      useGrantedResource() {
        return false;
      },
      getResourceServerInfo(ctx, indicator) {
        return resourceServerInfo(indicator);
      },
    },
  },
  ttl: {
    // The resource server's lifetime (5 s for "short" indicators) wins over the configured default.
    AccessToken(ctx, token) {
      return token.resourceServer?.accessTokenTTL || accessTokenTTL;
    },
    ClientCredentials(ctx, token) {
      return token.resourceServer?.accessTokenTTL || accessTokenTTL;
    },
    AuthorizationCode: 60,
    DeviceCode: deviceCodeTTL,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  // The web client gets a refresh token for offline_access without prompt=consent (which a proxy does not send).
  issueRefreshToken(ctx, client, code) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    return client.clientId === WEB_CLIENT || code.scopes.has('offline_access');
  },
  extraTokenClaims(ctx, token) {
    return exchangeClaims.get(token);
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre>${JSON.stringify(out).replace(/</g, '&lt;')}</pre>`);
  },
};

// registerTokenExchange adds the RFC 8693 grant to provider. The subject token must be a JWT access token this provider
// signed (typ at+jwt, this issuer, not expired; opaque tokens are not taken); the new token is for exactly one target,
// the resource or audience parameter (an absolute URI, as a resource indicator), has the subject token's sub, and its
// scopes are those asked for (default: the subject token's), none beyond the subject token's and the target's. The
// requested_token_type, when given, must be an access token. An actor token (delegation, RFC 8693 §4.1) must be a live
// client-credentials token of the exchanging client itself, opaque or JWT: the new token then names that client in
// act (over the subject token's own act, if any). Anything else is the error RFC 8693 §2.2.2 names:
// invalid_request, invalid_grant, invalid_scope or invalid_target.
function registerTokenExchange(provider) {
  const { InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget } = oidcErrors;
  const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
  const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
  const publicMembers = ['kty', 'kid', 'alg', 'use', 'n', 'e', 'crv', 'x', 'y'];
  const publicKeys = createLocalJWKSet({
    keys: cfg.jwks.keys.map((k) => Object.fromEntries(publicMembers.filter((m) => m in k).map((m) => [m, k[m]]))),
  });
  const list = (v) => (v === undefined ? [] : [].concat(v));
  const refused = (description) => Object.assign(new InvalidGrant(), { error_description: description });
  // verifyAccessToken returns the claims of a JWT access token this provider signed, or refuses it as what.
  async function verifyAccessToken(value, what) {
    try {
      const { payload } = await jwtVerify(value, publicKeys, {
        issuer: provider.issuer, typ: 'at+jwt', algorithms: ['RS256', 'ES256'], requiredClaims: ['sub', 'exp'],
      });
      return payload;
    } catch (err) {
      throw refused(`${what} refused: ${err.code || err.message}${err.claim ? ` (${err.claim})` : ''}`);
    }
  }
  // actorOf returns the client ID of an actor token: a live client-credentials token of the client making the request.
  async function actorOf(value, client) {
    let clientId;
    const opaque = await provider.ClientCredentials.find(value);
    if (opaque) {
      ({ clientId } = opaque);
    } else {
      const claims = await verifyAccessToken(value, 'actor_token');
      clientId = claims.sub === claims.client_id ? claims.client_id : undefined; // not a user's token
    }
    if (clientId !== client.clientId) {
      throw refused('actor_token refused: not a client-credentials token of the exchanging client');
    }
    return clientId;
  }

  async function handler(ctx, next) {
    const { params, client } = ctx.oidc;
    if (![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(params.subject_token_type)) {
      throw new InvalidRequest('subject_token_type must be an access token or a JWT');
    }
    if (!params.subject_token) {
      throw new InvalidRequest('missing subject_token');
    }
    if (!params.actor_token !== !params.actor_token_type) {
      throw new InvalidRequest('actor_token and actor_token_type go together');
    }
    if (params.actor_token_type && params.actor_token_type !== ACCESS_TOKEN_TYPE) {
      throw new InvalidRequest('actor_token_type must be an access token');
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new InvalidRequest('only access tokens can be requested');
    }
    const subject = await verifyAccessToken(params.subject_token, 'subject_token');
    const act = params.actor_token ? { sub: await actorOf(params.actor_token, client), act: subject.act } : undefined;

    const targets = [...new Set([...list(params.resource), ...list(params.audience)])];
    if (targets.length !== 1) {
      throw new InvalidTarget('exactly one resource or audience is required');
    }
    let href;
    try {
      ({ href } = new URL(targets[0]));
    } catch {
      throw new InvalidTarget('the target must be an absolute URI');
    }
    if (href.includes('#')) {
      throw new InvalidTarget('the target must not have a fragment');
    }
    const resourceServer = new provider.ResourceServer(targets[0], resourceServerInfo(targets[0]));

    const held = new Set(typeof subject.scope === 'string' ? subject.scope.split(' ') : []);
    const asked = params.scope ? [...new Set(params.scope.split(' '))] : [...held];
    const beyond = asked.filter((s) => !held.has(s));
    if (beyond.length > 0) {
      throw new InvalidScope('scope beyond the subject token\'s', beyond.join(' '));
    }
    const offered = new Set(resourceServer.scope.split(' '));

    const token = new provider.AccessToken({
      accountId: subject.sub,
      client,
      gty: 'token_exchange',
      scope: asked.filter((s) => offered.has(s)).join(' ') || undefined,
    });
    if (act) exchangeClaims.set(token, { act });
    token.resourceServer = resourceServer;
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: token.tokenType,
      expires_in: token.expiration,
      scope: token.scope,
    };
    await next();
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler, [
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type',
    'audience', 'resource', 'scope',
  ], ['audience', 'resource']);
}

const server = http.createServer();
server.listen(cfg.port || 0, host, () => {
  const { port } = server.address();
  const issuer = `http://${host}:${port}`;
  const provider = new Provider(issuer, configuration);
  registerTokenExchange(provider);

  // One log line per request.
  provider.use(async (ctx, next) => {
    const start = Date.now();
    try {
      await next();
    } finally {
      console.log(`${new Date().toISOString()} ${ctx.method} ${ctx.path} -> ${ctx.status} (${Date.now() - start} ms)`);
    }
  });

  // Non-interactive login and consent (with webClient, the provider's own pages instead): the account is the login_hint (default "alice"), every
  // requested scope, claim and resource scope is granted.
  provider.use(async (ctx, next) => {
    if (cfg.webClient || ctx.method !== 'GET' || !/^\/interaction\/[^/]+$/.test(ctx.path)) {
      await next();
      return;
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params, session } = details;
    let result;
    if (prompt.name === 'login') {
      result = { login: { accountId: params.login_hint || defaultAccount } };
    } else if (prompt.name === 'consent') {
      let grant;
      if (details.grantId) {
        grant = await provider.Grant.find(details.grantId);
      } else {
        grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      }
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.redirect(to);
    ctx.status = 303;
  });

  provider.on('access_token.saved', (token) => {
    if (token.clientId === DPOP_NONCE_CLIENT) nonceClientTokens.add(token.jti);
  });

  provider.on('server_error', (ctx, err) => {
    console.error(`server_error ${ctx.method} ${ctx.path}: ${err && err.stack}`);
  });

  server.on('request', provider.callback());

  const ready = JSON.stringify({
    issuer, port, version, node: process.version, pid: process.pid,
  });
  writeFileSync(`${cfg.readyFile}.tmp`, ready);
  renameSync(`${cfg.readyFile}.tmp`, cfg.readyFile);
  console.log(`oidc-provider ${version} listening, issuer ${issuer}`);
});

function shutdown(signal) {
  console.log(`received ${signal}, exiting`);
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
