// Package jsonclaims reads registered members of a JSON claim set (a JWT
// payload, an introspection response) with their JSON types checked: a
// present member of the wrong type is an error, an absent one is the zero
// value. Callers wrap the errors with their own sentinels.
package jsonclaims

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxNumericDate is 9999-12-31T23:59:59Z; later dates are refused.
const MaxNumericDate = 253402300799

// String reads a string member.
func String(obj map[string]any, name string) (string, error) {
	v, ok := obj[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// NumericDate reads a NumericDate member (seconds since the epoch, RFC 7519),
// refusing NaN, negative values and dates after MaxNumericDate.
func NumericDate(obj map[string]any, name string) (time.Time, error) {
	v, ok := obj[name]
	if !ok {
		return time.Time{}, nil
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f < 0 || f > MaxNumericDate {
		return time.Time{}, fmt.Errorf("%s is not a valid NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// Strings reads a member that is a string or an array of strings (aud).
func Strings(obj map[string]any, name string) ([]string, error) {
	switch v := obj[name].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s has a non-string member", name)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is neither a string nor an array", name)
}

// Joined reads a member that is a string, or an array of strings joined by
// spaces (scope or scp as some servers send them).
func Joined(obj map[string]any, name string) (string, error) {
	if s, ok := obj[name].(string); ok {
		return s, nil
	}
	list, err := Strings(obj, name)
	return strings.Join(list, " "), err
}
