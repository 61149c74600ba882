package memstore_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/vault"
	"github.com/gatehouse-dev/gatehouse/internal/vault/memstore"
	"github.com/gatehouse-dev/gatehouse/internal/vault/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vault.Store {
		s := memstore.New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
