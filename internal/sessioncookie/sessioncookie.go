// Package sessioncookie reads and writes the OAuth Agent's cookies in the
// Curity token handler layout: names <prefix>-login|-at|-auth|-id|-csrf,
// values sealed with package seal, HttpOnly, SameSite=Strict, Secure unless
// explicitly relaxed, each on its own path and cleared on that same path.
package sessioncookie

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/seal"
)

// Kind names one of the agent's cookies.
type Kind int

const (
	Login Kind = iota // login transaction: PKCE verifier, state, nonce
	AT                // access token
	Auth              // refresh token
	ID                // ID token
	CSRF              // CSRF token
	numKinds
)

var suffixes = [numKinds]string{"-login", "-at", "-auth", "-id", "-csrf"}

// MaxCookieBytes bounds name=value of one cookie: browsers keep at most 4096.
const MaxCookieBytes = 4000

var (
	// ErrMissing: the request has no such cookie.
	ErrMissing = errors.New("sessioncookie: cookie missing")
	// ErrDuplicate: the request carries the same cookie name twice (cookie
	// tossing from a sibling subdomain, or stale cookies on another path).
	ErrDuplicate = errors.New("sessioncookie: cookie sent twice")
	// ErrUndecryptable: the cookie does not open with any key.
	ErrUndecryptable = errors.New("sessioncookie: cookie cannot be decrypted")
	// ErrTooLarge: a sealed value would exceed MaxCookieBytes.
	ErrTooLarge = errors.New("sessioncookie: cookie too large")
	// ErrMisplaced: the cookie holds the sealed value of another of the
	// codec's cookies sent in the same request (a value copied to another
	// name). The envelope has no associated data (Curity's format), so the
	// copy would open; sealing uses a random IV, so two genuine cookies never
	// hold the same value.
	ErrMisplaced = errors.New("sessioncookie: cookie holds the value of another cookie")
)

// Config describes the cookies.
type Config struct {
	Prefix   string // name prefix, e.g. "example"
	Domain   string // empty: host-only
	Path     string // path of -login, -at and -csrf; covers the agent and every cookie route
	BasePath string // the agent's base path: -auth lives here, -id under BasePath/claims
	// IDAtBasePath puts -id on BasePath (needed when logout sends id_token_hint).
	IDAtBasePath bool
	Insecure     bool          // drop the Secure attribute (plain-http development only)
	LoginMaxAge  time.Duration // Max-Age of -login
	Ring         *seal.Ring
}

// Codec reads and writes the cookies.
type Codec struct {
	cfg   Config
	names [numKinds]string
	paths [numKinds]string
	csrfH string
}

// New returns a Codec for cfg.
func New(cfg Config) *Codec {
	c := &Codec{cfg: cfg, csrfH: CSRFHeaderName(cfg.Prefix)}
	for k := range numKinds {
		c.names[k] = cfg.Prefix + suffixes[k]
		c.paths[k] = cfg.Path
	}
	if strings.HasPrefix(cfg.Prefix, "__Host-") {
		// Browsers accept __Host- cookies only with Path=/: every cookie lives there.
		return c
	}
	c.paths[Auth] = cfg.BasePath
	c.paths[ID] = cfg.BasePath + "/claims"
	if cfg.IDAtBasePath {
		c.paths[ID] = cfg.BasePath
	}
	return c
}

// Name returns the cookie name of k.
func (c *Codec) Name(k Kind) string { return c.names[k] }

// Path returns the cookie path of k.
func (c *Codec) Path(k Kind) string { return c.paths[k] }

// CSRFHeaderName is the CSRF request header of cookie name prefix prefix,
// x-<prefix>-csrf (Curity's name).
func CSRFHeaderName(prefix string) string { return "x-" + prefix + "-csrf" }

// CSRFHeader returns the name of the CSRF request header, x-<prefix>-csrf.
func (c *Codec) CSRFHeader() string { return c.csrfH }

// Owns reports whether name is in Gatehouse's cookie namespace: it starts
// with "<prefix>-" (ASCII case-insensitive, as some servers treat names).
func (c *Codec) Owns(name string) bool {
	if hasFoldPrefix(name, c.cfg.Prefix+"-") {
		return true
	}
	// With a __Host- prefix, cookies that cannot live on Path=/ (the
	// vault's binding cookie) are named __Secure-<rest>-...: Gatehouse's too.
	rest, ok := strings.CutPrefix(c.cfg.Prefix, "__Host-")
	return ok && hasFoldPrefix(name, "__Secure-"+rest+"-")
}

func hasFoldPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// found is what one scan of the Cookie headers saw of one cookie name.
type found struct {
	value string // the last value seen
	count int
}

// scan reads the Cookie headers once and returns, for each of the codec's
// names, the last value and how often it occurs (the semantics of Lookup,
// for all names in one pass). It does not allocate.
func (c *Codec) scan(r *http.Request) [numKinds]found {
	var f [numKinds]found
	for _, h := range r.Header["Cookie"] {
		for len(h) > 0 {
			var part string
			part, h, _ = strings.Cut(h, ";")
			n, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				continue
			}
			for k := range numKinds {
				if n == c.names[k] {
					f[k].count++
					f[k].value = strings.Trim(v, `"`)
				}
			}
		}
	}
	return f
}

// Raw returns the sealed value of cookie k: ErrMissing when absent,
// ErrDuplicate when the request carries it more than once.
func (c *Codec) Raw(r *http.Request, k Kind) (string, error) {
	return raw(c.scan(r)[k])
}

func raw(f found) (string, error) {
	switch f.count {
	case 0:
		return "", ErrMissing
	case 1:
		return f.value, nil
	}
	return "", ErrDuplicate
}

// Get returns the plaintext of cookie k. Besides the errors of Raw it
// returns ErrMisplaced when another of the codec's cookies in r holds the
// same sealed value.
func (c *Codec) Get(r *http.Request, k Kind) (string, error) {
	all := c.scan(r)
	v, err := raw(all[k])
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", ErrMissing
	}
	for j := range numKinds {
		if j != k && all[j].count > 0 && all[j].value == v {
			return "", fmt.Errorf("%w: %s holds the value of %s", ErrMisplaced, c.names[k], c.names[j])
		}
	}
	p, err := c.cfg.Ring.OpenString(v)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrUndecryptable, c.names[k], err)
	}
	return p, nil
}

// Duplicates reports whether the request carries any of the codec's cookie
// names more than once.
func (c *Codec) Duplicates(r *http.Request) bool {
	for _, f := range c.scan(r) {
		if f.count > 1 {
			return true
		}
	}
	return false
}

// Seal returns the Set-Cookie header value for k holding plaintext, or
// ErrTooLarge.
func (c *Codec) Seal(k Kind, plaintext string) (string, error) {
	if n := len(c.names[k]) + 1 + seal.SealedLen(len(plaintext)); n > MaxCookieBytes {
		return "", fmt.Errorf("%w: %s would be %d bytes, the limit is %d", ErrTooLarge, c.names[k], n, MaxCookieBytes)
	}
	v, err := c.cfg.Ring.SealString(plaintext)
	if err != nil {
		return "", err
	}
	ck := c.cookie(k)
	ck.Value = v
	if k == Login {
		ck.MaxAge = int(c.cfg.LoginMaxAge / time.Second)
	}
	return ck.String(), nil
}

// Clearing returns the Set-Cookie header value that deletes k on its own path.
func (c *Codec) Clearing(k Kind) string {
	ck := c.cookie(k)
	ck.MaxAge = -1
	ck.Expires = time.Unix(0, 0)
	return ck.String()
}

func (c *Codec) cookie(k Kind) *http.Cookie {
	return &http.Cookie{
		Name:     c.names[k],
		Path:     c.paths[k],
		Domain:   c.cfg.Domain,
		HttpOnly: true,
		Secure:   !c.cfg.Insecure,
		SameSite: http.SameSiteStrictMode,
	}
}

// Lookup finds the cookie called name in Cookie header values without
// allocating. It returns the last value seen and how many times the name occurs.
func Lookup(headers []string, name string) (value string, count int) {
	for _, h := range headers {
		for len(h) > 0 {
			var part string
			part, h, _ = strings.Cut(h, ";")
			part = strings.TrimSpace(part)
			n, v, ok := strings.Cut(part, "=")
			if !ok || n != name {
				continue
			}
			count++
			value = strings.Trim(v, `"`)
		}
	}
	return value, count
}
