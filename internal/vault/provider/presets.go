package provider

import "slices"

// Quirk names a way a provider departs from RFC 6749 that Gatehouse knows
// how to handle. Quirks are data: a preset lists its own, and a
// configuration may list them for any provider.
type Quirk string

const (
	// FormEncodedTokenResponse: the token endpoint may answer
	// application/x-www-form-urlencoded instead of JSON, and may report
	// errors with HTTP 200 and an error member (GitHub).
	FormEncodedTokenResponse Quirk = "form_encoded_token_response"
	// NestedUserToken: the user's token is nested under "authed_user" of a
	// response that also carries an app token; the requested user scopes go
	// in the user_scope parameter; errors come as {"ok":false,"error":...}
	// with HTTP 200 (Slack's OAuth v2).
	NestedUserToken Quirk = "nested_user_token"
	// OfflineAccessParams: a refresh token is issued only when the
	// authorization request says access_type=offline and prompt=consent (Google).
	OfflineAccessParams Quirk = "offline_access_params"
	// TenantInURL: the endpoints contain a {tenant} path segment, replaced by
	// the configured tenant (Microsoft identity platform).
	TenantInURL Quirk = "tenant_in_url"
	// CommaSeparatedScopes: scopes are joined and granted with commas, not
	// spaces (GitHub's granted scopes, Slack).
	CommaSeparatedScopes Quirk = "comma_separated_scopes"
	// NonExpiringTokens: access tokens do not expire and no refresh token is
	// issued (GitHub OAuth apps). Without this quirk a token response with
	// neither expires_in nor refresh_token is refused, because Gatehouse
	// could neither tell when the token ends nor renew it; with it, a 401 from
	// the provider's API marks the connection needs_reauth at once.
	NonExpiringTokens Quirk = "non_expiring_tokens"
)

// Quirks lists every known quirk.
var Quirks = []Quirk{FormEncodedTokenResponse, NestedUserToken, OfflineAccessParams, TenantInURL, CommaSeparatedScopes, NonExpiringTokens}

// KnownQuirk reports whether q is a known quirk name.
func KnownQuirk(q string) bool { return slices.Contains(Quirks, Quirk(q)) }

// Preset is what Gatehouse knows about a well-known provider. Presets follow
// the providers' public documentation; they are not verified against the
// live services, which change.
type Preset struct {
	AuthorizationEndpoint string
	TokenEndpoint         string
	// RevocationEndpoint is empty when the provider has no RFC 7009 endpoint.
	RevocationEndpoint string
	APIBaseURL         string
	// AuthMethod is the client authentication the provider expects.
	AuthMethod string
	// Tenant is the default of a TenantInURL provider.
	Tenant string
	Quirks []Quirk
}

// TenantPlaceholder is replaced by the tenant in TenantInURL endpoints.
const TenantPlaceholder = "{tenant}"

var presets = map[string]Preset{
	"github": {
		AuthorizationEndpoint: "https://github.com/login/oauth/authorize",
		TokenEndpoint:         "https://github.com/login/oauth/access_token",
		APIBaseURL:            "https://api.github.com",
		AuthMethod:            "client_secret_post",
		Quirks:                []Quirk{FormEncodedTokenResponse, CommaSeparatedScopes, NonExpiringTokens},
	},
	"google": {
		AuthorizationEndpoint: "https://accounts.google.com/o/oauth2/v2/auth",
		TokenEndpoint:         "https://oauth2.googleapis.com/token",
		RevocationEndpoint:    "https://oauth2.googleapis.com/revoke",
		APIBaseURL:            "https://www.googleapis.com",
		AuthMethod:            "client_secret_post",
		Quirks:                []Quirk{OfflineAccessParams},
	},
	"microsoft": {
		AuthorizationEndpoint: "https://login.microsoftonline.com/" + TenantPlaceholder + "/oauth2/v2.0/authorize",
		TokenEndpoint:         "https://login.microsoftonline.com/" + TenantPlaceholder + "/oauth2/v2.0/token",
		APIBaseURL:            "https://graph.microsoft.com",
		AuthMethod:            "client_secret_post",
		Tenant:                "common",
		Quirks:                []Quirk{TenantInURL},
	},
	"slack": {
		AuthorizationEndpoint: "https://slack.com/oauth/v2/authorize",
		TokenEndpoint:         "https://slack.com/api/oauth.v2.access",
		APIBaseURL:            "https://slack.com/api",
		AuthMethod:            "client_secret_post",
		Quirks:                []Quirk{NestedUserToken, CommaSeparatedScopes},
	},
}

// PresetNames lists the presets.
var PresetNames = []string{"github", "google", "microsoft", "slack"}

// LookupPreset returns the preset called name.
func LookupPreset(name string) (Preset, bool) {
	p, ok := presets[name]
	if ok {
		p.Quirks = slices.Clone(p.Quirks)
	}
	return p, ok
}
