package memstore_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/apikey"
	"github.com/gatehouse-dev/gatehouse/internal/apikey/memstore"
	"github.com/gatehouse-dev/gatehouse/internal/apikey/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) apikey.Store { return memstore.New() })
}
