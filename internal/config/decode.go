package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// decoder fills a Go value from a YAML node tree, strictly: unknown keys,
// duplicate keys and type mismatches are reported with their field path and
// line, all of them, not just the first.
type decoder struct {
	env  func(string) (string, bool)
	errs []error
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeFor[Duration]()
	secretType   = reflect.TypeFor[secret.Value]()
)

func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value: the default applies
	}
	switch {
	case v.Type() == durationType:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, n, "%q is not a duration (use a number with a unit, e.g. \"30s\", \"10m\")", s)
			return
		}
		v.Set(reflect.ValueOf(Duration(dur)))
		return
	case v.Type() == secretType:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		v.Set(reflect.ValueOf(secret.New(s)))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(path, n, v.Elem())
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			d.fail(path, n, "internal error: unsupported map key type %s", v.Type().Key())
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "must be a mapping of names to values, not a %s", kindName(n.Kind))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			fp := path + "[" + strconv.Quote(key.Value) + "]"
			if m.MapIndex(reflect.ValueOf(key.Value)).IsValid() {
				d.fail(fp, key, "duplicate key")
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(fp, val, elem)
			m.SetMapIndex(reflect.ValueOf(key.Value).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(path, n); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.fail(path, n, "%q is not a boolean (use true or false)", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil || i > math.MaxInt64 {
			d.fail(path, n, "%q is not an integer", s)
			return
		}
		v.SetInt(i)
	default:
		d.fail(path, n, "internal error: unsupported field type %s", v.Type())
	}
}

// scalar returns the node's text with ${ENV} references expanded.
func (d *decoder) scalar(path string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "must be a single value, not a %s", kindName(n.Kind))
		return "", false
	}
	s, err := expandEnv(n.Value, d.env)
	if err != nil {
		d.fail(path, n, "%v", err)
		return "", false
	}
	return s, true
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "must be a mapping of keys to values, not a %s", kindName(n.Kind))
		return
	}
	fields := map[string]int{}
	t := v.Type()
	var known []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		known = append(known, name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value == "<<" {
			d.fail(join(path, key.Value), key, "YAML merge keys are not supported")
			continue
		}
		fp := join(path, key.Value)
		if seen[key.Value] {
			d.fail(fp, key, "duplicate key")
			continue
		}
		seen[key.Value] = true
		idx, ok := fields[key.Value]
		if !ok {
			d.fail(fp, key, "unknown key%s", suggest(key.Value, known))
			continue
		}
		d.decode(fp, val, v.Field(idx))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}

// suggest names a known key close to an unknown one (a typo).
func suggest(unknown string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(unknown, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// expandEnv replaces ${NAME} with the value of environment variable NAME.
// "$${" stands for a literal "${". A reference to an unset variable is an
// error: a silently empty secret or URL is worse than a refusal to start.
func expandEnv(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errors.New("unterminated ${...} reference")
		}
		name := s[i+2 : i+end]
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment variable name %q in ${...}", name)
		}
		val, ok := env(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}
