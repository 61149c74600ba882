package jsonclaims

import (
	"encoding/json"
	"testing"
	"time"
)

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReaders(t *testing.T) {
	o := obj(t, `{"iss":"x","n":1,"exp":1700000000.5,"neg":-1,"big":1e20,"aud":["a","b"],"aud1":"a","bad":[1],"scp":["r","w"]}`)
	if s, err := String(o, "iss"); s != "x" || err != nil {
		t.Errorf("String: %q %v", s, err)
	}
	if s, err := String(o, "absent"); s != "" || err != nil {
		t.Errorf("absent String: %q %v", s, err)
	}
	if _, err := String(o, "n"); err == nil {
		t.Error("a number read as a string")
	}
	if d, err := NumericDate(o, "exp"); err != nil || !d.Equal(time.Unix(1700000000, 5e8)) {
		t.Errorf("NumericDate: %v %v", d, err)
	}
	for _, bad := range []string{"neg", "big", "iss"} {
		if _, err := NumericDate(o, bad); err == nil {
			t.Errorf("NumericDate accepted %s", bad)
		}
	}
	if l, err := Strings(o, "aud"); err != nil || len(l) != 2 {
		t.Errorf("Strings array: %v %v", l, err)
	}
	if l, err := Strings(o, "aud1"); err != nil || len(l) != 1 || l[0] != "a" {
		t.Errorf("Strings string: %v %v", l, err)
	}
	if _, err := Strings(o, "bad"); err == nil {
		t.Error("Strings accepted a non-string member")
	}
	if _, err := Strings(o, "n"); err == nil {
		t.Error("Strings accepted a number")
	}
	if s, err := Joined(o, "scp"); s != "r w" || err != nil {
		t.Errorf("Joined: %q %v", s, err)
	}
	if s, err := Joined(o, "iss"); s != "x" || err != nil {
		t.Errorf("Joined string: %q %v", s, err)
	}
}
