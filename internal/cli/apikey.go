package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/vault/sqlstore"
)

const (
	apiKeyCreateUsage = "usage: gatehouse keys api-key [create] [--config FILE] --client-id ID [--scopes a,b] [--expires-in 90d | --expires-at 2030-01-31T00:00:00Z]"
	apiKeyRevokeUsage = "usage: gatehouse keys api-key revoke --config FILE --id ID"
	apiKeyListUsage   = "usage: gatehouse keys api-key list --config FILE"
	// apiKeyStoreTimeout bounds one command's work on the key store.
	apiKeyStoreTimeout = 30 * time.Second
)

// apiKey runs `keys api-key`: create (the default), revoke or list.
func apiKey(ctx context.Context, args []string, env Env) int {
	if len(args) > 0 {
		switch args[0] {
		case "create":
			return apiKeyCreate(ctx, args[1:], env)
		case "revoke":
			return apiKeyRevoke(ctx, args[1:], env)
		case "list":
			return apiKeyList(ctx, args[1:], env)
		}
	}
	return apiKeyCreate(ctx, args, env)
}

// apiKeyCreate creates an API key and prints it once. With --config the
// key's hash goes into the configuration's api_keys.store, where Gatehouse
// finds it on the next request; without, the api_keys.keys entry that
// holds its hash is printed for the configuration file. Gatehouse never
// stores the key.
func apiKeyCreate(ctx context.Context, args []string, env Env) int {
	fs := flag.NewFlagSet("keys api-key create", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "", "configuration file whose api_keys.store receives the key")
	clientID := fs.String("client-id", "", "the client the key stands for (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes the key grants")
	expiresIn := fs.String("expires-in", "", "lifetime of the key, e.g. 90d, 720h")
	fs.StringVar(expiresIn, "expires", "", "same as --expires-in")
	expiresAt := fs.String("expires-at", "", "expiry as an RFC 3339 time, e.g. 2030-01-31T00:00:00Z")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *clientID == "" || fs.NArg() > 0 || strings.ContainsAny(*clientID, "\"\\\r\n") || len(*clientID) > apikey.MaxClientIDLen {
		fmt.Fprintln(env.Stderr, apiKeyCreateUsage)
		return 2
	}
	var exp time.Time
	switch {
	case *expiresIn != "" && *expiresAt != "":
		fmt.Fprintln(env.Stderr, "set --expires-in or --expires-at, not both")
		return 2
	case *expiresIn != "":
		d, err := parseLifetime(*expiresIn)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 2
		}
		exp = time.Now().Add(d).UTC().Truncate(time.Second)
	case *expiresAt != "":
		t, err := time.Parse(time.RFC3339, *expiresAt)
		if err != nil {
			fmt.Fprintf(env.Stderr, "--expires-at %q is not an RFC 3339 time\n", *expiresAt)
			return 2
		}
		exp = t.UTC()
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !apikey.ValidScope(s) {
			fmt.Fprintf(env.Stderr, "%q is not a valid scope\n", s)
			return 2
		}
		list = append(list, s)
	}
	if *path != "" {
		if !exp.IsZero() && !exp.After(time.Now()) {
			fmt.Fprintf(env.Stderr, "the expiry %s is in the past\n", exp.Format(time.RFC3339))
			return 2
		}
		return apiKeyCreateStored(ctx, *path, *clientID, list, exp, env)
	}
	k, err := apikey.Generate(nil)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = strconv.Quote(s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "API key (shown only now; Gatehouse keeps only its hash):\n\n  %s\n\n", k.Value)
	b.WriteString("Give it to the client, which sends it in the api_keys.header (default X-API-Key).\n")
	b.WriteString("Add this entry to api_keys.keys in the configuration (restart Gatehouse to apply),\n")
	b.WriteString("or create the key in api_keys.store with --config FILE (no restart):\n\n")
	fmt.Fprintf(&b, "    - id: %q\n      hash: %q\n      client_id: %q\n", k.ID, k.Hash, *clientID)
	fmt.Fprintf(&b, "      scopes: [%s]\n", strings.Join(quoted, ", "))
	if !exp.IsZero() {
		fmt.Fprintf(&b, "      expires_at: %q\n", exp.Format(time.RFC3339))
	}
	fmt.Fprint(env.Stdout, b.String())
	return 0
}

// apiKeyCreateStored creates a key in the configuration's api_keys.store.
func apiKeyCreateStored(ctx context.Context, path, clientID string, scopes []string, exp time.Time, env Env) int {
	cfg, st, code := openKeyStore(path, env, true)
	if st == nil {
		return code
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, apiKeyStoreTimeout)
	defer cancel()
	k, err := apikey.Generate(nil)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	rec := apikey.Record{
		ID: k.ID, Sum: apikey.Sum(k.Value), ClientID: clientID, Scopes: scopes,
		ExpiresAt: exp, CreatedAt: time.Now().UTC(),
	}
	if err := st.APIKeys().Create(ctx, rec); err != nil {
		fmt.Fprintf(env.Stderr, "%s: api_keys.store: %v\n", path, err)
		return 1
	}
	expiry := "never"
	if !exp.IsZero() {
		expiry = exp.Format(time.RFC3339)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "API key (shown only now; Gatehouse keeps only its hash):\n\n  %s\n\n", k.Value)
	fmt.Fprintf(&b, "Stored in api_keys.store: id %s, client %s, scopes [%s], expires %s.\n",
		k.ID, printable(clientID), strings.Join(scopes, " "), expiry)
	fmt.Fprintf(&b, "Give it to the client, which sends it in the %s header; Gatehouse accepts it from the\n", cfg.APIKeys.Header)
	fmt.Fprintf(&b, "next request on, without a restart. Revoke it with:\n\n  gatehouse keys api-key revoke --config %s --id %s\n", path, k.ID)
	fmt.Fprint(env.Stdout, b.String())
	return 0
}

// apiKeyRevoke revokes a key of api_keys.store: Gatehouse refuses it from
// the next request on.
func apiKeyRevoke(ctx context.Context, args []string, env Env) int {
	fs := flag.NewFlagSet("keys api-key revoke", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "", "configuration file whose api_keys.store holds the key (required)")
	id := fs.String("id", "", "the key's id, the part between the dots (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || *id == "" || fs.NArg() > 0 {
		fmt.Fprintln(env.Stderr, apiKeyRevokeUsage)
		return 2
	}
	if !apikey.ValidID(*id) {
		if _, err := apikey.Parse(*id); err == nil {
			fmt.Fprintln(env.Stderr, "--id takes the key's id (the part between the dots), not the key")
		} else {
			fmt.Fprintf(env.Stderr, "--id %q is not a key id (%d base64url characters)\n", *id, apikey.IDLen)
		}
		return 2
	}
	cfg, st, code := openKeyStore(*path, env, true)
	if st == nil {
		return code
	}
	defer st.Close()
	for i, k := range cfg.APIKeys.Keys {
		if k.ID == *id {
			fmt.Fprintf(env.Stderr, "%s: key %s is api_keys.keys[%d] of the configuration file: set revoked: true there and restart Gatehouse\n", *path, *id, i)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(ctx, apiKeyStoreTimeout)
	defer cancel()
	keys := st.APIKeys()
	err := keys.Revoke(ctx, *id, time.Now().UTC())
	if errors.Is(err, apikey.ErrNotFound) {
		fmt.Fprintf(env.Stderr, "%s: api_keys.store has no key %s\n", *path, *id)
		return 1
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: api_keys.store: %v\n", *path, err)
		return 1
	}
	rec, err := keys.Lookup(ctx, *id)
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: api_keys.store: %v\n", *path, err)
		return 1
	}
	fmt.Fprintf(env.Stdout, "API key %s (client %s) revoked at %s: Gatehouse refuses it from the next request on.\n",
		*id, printable(rec.ClientID), rec.RevokedAt.UTC().Format(time.RFC3339))
	return 0
}

// apiKeyList lists the configuration's keys and those of api_keys.store:
// ids, clients, scopes, expiry and revocation, never hashes.
func apiKeyList(ctx context.Context, args []string, env Env) int {
	path, ok := configFlag("keys api-key list", args, env)
	if !ok {
		return 2
	}
	cfg, st, code := openKeyStore(path, env, false)
	if cfg == nil {
		return code
	}
	type row struct {
		id, source, client, scopes, status, expires, revoked, created string
	}
	var rows []row
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	now := time.Now()
	status := func(revoked bool, exp time.Time) string {
		switch {
		case revoked:
			return "revoked"
		case !exp.IsZero() && !now.Before(exp):
			return "expired"
		}
		return "active"
	}
	for _, k := range cfg.APIKeys.Keys {
		rev := "-"
		if k.Revoked {
			rev = "yes"
		}
		rows = append(rows, row{k.ID, "config", printable(k.ClientID), scopeList(k.Scopes),
			status(k.Revoked, k.ExpiryTime()), when(k.ExpiryTime()), rev, "-"})
	}
	if st != nil {
		defer st.Close()
		ctx, cancel := context.WithTimeout(ctx, apiKeyStoreTimeout)
		defer cancel()
		recs, err := st.APIKeys().List(ctx)
		if err != nil {
			fmt.Fprintf(env.Stderr, "%s: api_keys.store: %v\n", path, err)
			return 1
		}
		for _, r := range recs {
			rows = append(rows, row{r.ID, "store", printable(r.ClientID), scopeList(r.Scopes),
				status(!r.RevokedAt.IsZero(), r.ExpiresAt), when(r.ExpiresAt), when(r.RevokedAt), when(r.CreatedAt)})
		}
	} else {
		fmt.Fprintf(env.Stderr, "%s: no api_keys.store; listing the configuration's keys only\n", path)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tCLIENT ID\tSCOPES\tSTATUS\tEXPIRES\tREVOKED\tCREATED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.id, r.source, r.client, r.scopes, r.status, r.expires, r.revoked, r.created)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	return 0
}

// openKeyStore loads the configuration at path and opens its
// api_keys.store. Without a store it fails when needStore is set, and
// otherwise returns the configuration alone. On failure it has printed why
// and returns the exit code.
func openKeyStore(path string, env Env, needStore bool) (*config.Config, *sqlstore.Store, int) {
	cfg, ok := load(path, env)
	if !ok {
		return nil, nil, 1
	}
	if cfg.APIKeys == nil {
		fmt.Fprintf(env.Stderr, "%s: the configuration has no api_keys\n", path)
		return nil, nil, 1
	}
	if cfg.APIKeys.Store == nil {
		if needStore {
			fmt.Fprintf(env.Stderr, "%s: the configuration has no api_keys.store (without --config, keys api-key prints an api_keys.keys entry instead)\n", path)
			return nil, nil, 1
		}
		return cfg, nil, 0
	}
	st, err := server.OpenAPIKeyStore(cfg, filepath.Dir(path))
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", path, err)
		return nil, nil, 1
	}
	return cfg, st, 0
}

// scopeList shows scopes separated by commas, "-" for none.
func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "-"
	}
	return strings.Join(scopes, ",")
}

// printable quotes s when it holds spaces or characters a terminal would
// interpret, so that a client id cannot break the output's columns or
// lines.
func printable(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// parseLifetime reads a duration, with d for days.
func parseLifetime(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 3650 {
			return 0, fmt.Errorf("--expires-in %q: days must be between 1 and 3650", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires-in %q is not a positive duration like 90d or 12h", s)
	}
	return d, nil
}
