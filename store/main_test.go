package store_test

import (
	"os"
	"testing"

	"tokenguard/store/storetest"
)

// TestMain runs the store's tests on SQLite and then again on PostgreSQL: they are the
// conformance suite every backend passes.
func TestMain(m *testing.M) { os.Exit(storetest.RunBackends(m)) }
