package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	const cred = "s3cr3t-token-value"
	v := New(cred)
	if v.Reveal() != cred {
		t.Fatalf("Reveal() = %q", v.Reveal())
	}
	type holder struct {
		Token Value
		Ptr   *Value
	}
	h := holder{Token: v, Ptr: &v}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("msg", "token", v, "holder", h)
	js, _ := json.Marshal(h)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", v),
		"%s":   fmt.Sprintf("%s", v),
		"%+v":  fmt.Sprintf("%+v", h),
		"%#v":  fmt.Sprintf("%#v", h),
		"%q":   fmt.Sprintf("%q", v),
		"json": string(js),
		"slog": logBuf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, cred) {
			t.Errorf("%s leaks the credential: %s", name, out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("%s does not show the redaction marker: %s", name, out)
		}
	}
}

func TestZeroValue(t *testing.T) {
	var v Value
	if !v.IsZero() || v.String() != "" || v.Len() != 0 {
		t.Fatalf("zero value not empty: %q", v.String())
	}
}
