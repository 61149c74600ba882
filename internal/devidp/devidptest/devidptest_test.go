package devidptest_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devidp"
	"github.com/gatehouse-dev/gatehouse/internal/devidp/devidptest"
)

func TestStart(t *testing.T) {
	hc := &http.Client{Timeout: 5 * time.Second}
	var issuer string
	t.Run("picks a loopback port", func(t *testing.T) {
		idp := devidptest.Start(t, devidp.Config{})
		issuer = idp.Issuer()
		if !strings.HasPrefix(issuer, "http://127.0.0.1:") {
			t.Fatalf("issuer %q, want http://127.0.0.1:<port>", issuer)
		}
		resp, err := hc.Get(issuer + devidp.PathDiscovery)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("discovery: %d", resp.StatusCode)
		}
	})
	t.Run("stopped after the test", func(t *testing.T) {
		if resp, err := hc.Get(issuer + devidp.PathDiscovery); err == nil {
			resp.Body.Close()
			t.Errorf("provider still answers after its test ended: %d", resp.StatusCode)
		}
	})
	t.Run("uses the port of a given issuer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		want := "http://localhost:" + strconv.Itoa(port)
		idp := devidptest.Start(t, devidp.Config{Issuer: want})
		if idp.Issuer() != want {
			t.Errorf("issuer %q, want %q", idp.Issuer(), want)
		}
		resp, err := hc.Get("http://127.0.0.1:" + strconv.Itoa(port) + devidp.PathKeys)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("keys: %d", resp.StatusCode)
		}
	})
}
