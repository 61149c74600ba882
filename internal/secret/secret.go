// Package secret holds credential values in a type that never prints,
// marshals or logs its content by accident.
//
// A Value reveals its content only through Reveal; fmt, encoding/json and
// log/slog all see "[REDACTED]". Config secrets (client secrets, cookie keys)
// and tokens carried through a request (the Principal's access token) use it.
package secret

import (
	"log/slog"
)

const redacted = "[REDACTED]"

// Value is a credential. The zero Value is empty.
type Value struct {
	v string
}

// New wraps s.
func New(s string) Value { return Value{v: s} }

// Reveal returns the credential itself. Call it only where the value is sent
// to the party it is meant for (an authorization server, an upstream, a cookie
// sealer), never to build log lines or error messages.
func (s Value) Reveal() string { return s.v }

// IsZero reports whether the value is empty.
func (s Value) IsZero() bool { return s.v == "" }

// Len returns the length of the credential in bytes; safe to log.
func (s Value) Len() int { return len(s.v) }

// String implements fmt.Stringer with a redacted form.
func (s Value) String() string {
	if s.v == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer so that %#v redacts too.
func (s Value) GoString() string { return `secret.Value("` + s.String() + `")` }

// MarshalJSON redacts the value.
func (s Value) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText redacts the value.
func (s Value) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue implements slog.LogValuer.
func (s Value) LogValue() slog.Value { return slog.StringValue(s.String()) }

// UnmarshalText lets config decoders fill a Value from a scalar.
func (s *Value) UnmarshalText(b []byte) error {
	s.v = string(b)
	return nil
}
