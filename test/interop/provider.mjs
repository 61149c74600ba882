// An independent OpenID Provider for Gatehouse's interop tests: panva's
// oidc-provider (OpenID Certified), configured like a strict real deployment:
// a confidential client, PKCE required, opaque access tokens, refresh tokens
// rotated on every use with reuse detection (presenting a rotated-out token
// revokes the whole grant), introspection, revocation, RP-initiated logout
// and RFC 9207 iss in authorization responses. With INTEROP_TX_CLIENT_ID it
// also has a client-credentials caller and a gateway client that may use
// the RFC 8693 token exchange grant registered below.
//
// Configuration comes from the environment; the process prints
// "READY <issuer>" on stdout once it listens on 127.0.0.1.
import Provider, { errors } from 'oidc-provider';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
};

const port = Number(env('INTEROP_PORT'));
const issuer = env('INTEROP_ISSUER', `http://localhost:${port}`);

const accounts = {
  demouser: { name: 'Interop User', given_name: 'Interop', family_name: 'User', email: 'demouser@example.com', email_verified: true },
};

// Token exchange (RFC 8693): the gateway client trades an active access
// token for a JWT access token for one of exchangeAudiences, with a subset
// of the subject token's scopes; with an actor token, act names its client.
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const exchangeAudiences = new Set((process.env.INTEROP_TX_AUDIENCES ?? '').split(' ').filter(Boolean));
const txClients = [];
if (process.env.INTEROP_TX_CLIENT_ID) {
  txClients.push(
    {
      client_id: env('INTEROP_TX_CLIENT_ID'),
      client_secret: env('INTEROP_TX_CLIENT_SECRET'),
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [TOKEN_EXCHANGE, 'client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'read write',
    },
    {
      // A service calling the gateway with a client-credentials token.
      client_id: env('INTEROP_CALLER_CLIENT_ID'),
      client_secret: env('INTEROP_CALLER_CLIENT_SECRET'),
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'read write',
    },
  );
}

async function findAccessToken(value) {
  if (!value) return undefined;
  const token = await provider.AccessToken.find(value) ?? await provider.ClientCredentials.find(value);
  return token && !token.isExpired ? token : undefined;
}

async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidRequest('only access tokens can be exchanged');
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidRequest('only access tokens are issued');
  }
  const subject = await findAccessToken(params.subject_token);
  if (!subject) {
    throw new errors.InvalidGrant('subject token is invalid or expired');
  }
  const audience = params.audience;
  if (!audience || !exchangeAudiences.has(audience)) {
    throw new errors.InvalidTarget('the client may not obtain tokens for this audience');
  }
  const granted = new Set((subject.scope ?? '').split(' ').filter(Boolean));
  const scope = (params.scope ?? subject.scope ?? '').split(' ').filter(Boolean);
  if (scope.some((s) => !granted.has(s))) {
    throw new errors.InvalidScope('the subject token does not grant the requested scope');
  }
  let act;
  if (params.actor_token) {
    if (params.actor_token_type !== ACCESS_TOKEN) {
      throw new errors.InvalidRequest('actor_token_type must be an access token');
    }
    const actor = await findAccessToken(params.actor_token);
    if (!actor) {
      throw new errors.InvalidGrant('actor token is invalid or expired');
    }
    act = { sub: actor.accountId ?? actor.clientId };
  }
  const token = new provider.AccessToken({
    accountId: subject.accountId ?? subject.clientId,
    client,
    scope: scope.join(' ') || undefined,
    gty: TOKEN_EXCHANGE,
  });
  // Read by extraTokenClaims when the token is saved.
  token.act = act;
  token.resourceServer = new provider.ResourceServer(audience, {
    audience, scope: 'read write', accessTokenFormat: 'jwt', accessTokenTTL: 600,
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}

const provider = new Provider(issuer, {
  clients: [
    ...txClients,
    {
      client_id: env('INTEROP_CLIENT_ID'),
      client_secret: env('INTEROP_CLIENT_SECRET'),
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [env('INTEROP_REDIRECT_URI')],
      post_logout_redirect_uris: [env('INTEROP_REDIRECT_URI')],
    },
    {
      // The example API introspects the opaque access tokens it receives.
      client_id: env('INTEROP_API_CLIENT_ID'),
      client_secret: env('INTEROP_API_CLIENT_SECRET'),
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  async findAccount(ctx, id) {
    // devInteractions signs in whatever login is typed; its id is the sub.
    const account = { sub: id, ...(accounts[id] ?? { name: id }) };
    return { accountId: id, async claims() { return account; } };
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'read', 'write'],
  extraTokenClaims: async (ctx, token) => (token.act ? { act: token.act } : undefined),
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    clientCredentials: { enabled: true },
  },
  // A refresh token for every code grant of a client allowed to refresh,
  // rotated on every use.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: Number(env('INTEROP_ACCESS_TOKEN_TTL', '300')),
    IdToken: 3600,
    RefreshToken: 8 * 3600,
    Grant: 8 * 3600,
    Session: 8 * 3600,
    Interaction: 600,
  },
  cookies: { keys: [env('INTEROP_COOKIE_KEY', 'interop-development-only-cookie-key')] },
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'revocation.error', 'introspection.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err?.name}: ${err?.message} ${err?.error_detail ?? ''}`));
}

provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'scope', 'resource',
]);

// Development provider on plain http: let it trust http for localhost.
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
