package cli

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
)

// apiKey creates an API key: the key goes to stdout once, with the
// api_keys.keys entry that holds its hash. Gatehouse never stores the key.
func apiKey(args []string, env Env) int {
	fs := flag.NewFlagSet("keys api-key", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	clientID := fs.String("client-id", "", "the client the key stands for (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes the key grants")
	expiresIn := fs.String("expires-in", "", "lifetime of the key, e.g. 90d, 12h")
	expiresAt := fs.String("expires-at", "", "expiry as an RFC 3339 time, e.g. 2030-01-31T00:00:00Z")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := "usage: gatehouse keys api-key --client-id ID [--scopes a,b] [--expires-in 90d | --expires-at 2030-01-31T00:00:00Z]"
	if *clientID == "" || fs.NArg() > 0 || strings.ContainsAny(*clientID, "\"\\\r\n") {
		fmt.Fprintln(env.Stderr, usage)
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
		if strings.ContainsAny(s, " \t\"\\") {
			fmt.Fprintf(env.Stderr, "%q is not a valid scope\n", s)
			return 2
		}
		list = append(list, strconv.Quote(s))
	}
	k, err := apikey.Generate(nil)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "API key (shown only now; Gatehouse keeps only its hash):\n\n  %s\n\n", k.Value)
	b.WriteString("Give it to the client, which sends it in the api_keys.header (default X-API-Key).\n")
	b.WriteString("Add this entry to api_keys.keys in the configuration (restart Gatehouse to apply):\n\n")
	fmt.Fprintf(&b, "    - id: %q\n      hash: %q\n      client_id: %q\n", k.ID, k.Hash, *clientID)
	fmt.Fprintf(&b, "      scopes: [%s]\n", strings.Join(list, ", "))
	if !exp.IsZero() {
		fmt.Fprintf(&b, "      expires_at: %q\n", exp.Format(time.RFC3339))
	}
	fmt.Fprint(env.Stdout, b.String())
	return 0
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
