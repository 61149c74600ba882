// An independent OpenID Provider for Gatehouse's interop tests: panva's
// oidc-provider (OpenID Certified), configured like a strict real deployment:
// a confidential client, PKCE required, opaque access tokens, refresh tokens
// rotated on every use with reuse detection (presenting a rotated-out token
// revokes the whole grant), introspection, revocation, RP-initiated logout
// and RFC 9207 iss in authorization responses.
//
// Configuration comes from the environment; the process prints
// "READY <issuer>" on stdout once it listens on 127.0.0.1.
import Provider from 'oidc-provider';

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

const provider = new Provider(issuer, {
  clients: [
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
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
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

// Development provider on plain http: let it trust http for localhost.
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
