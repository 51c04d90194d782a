package store_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"tokenguard/store"
	"tokenguard/store/storetest"
)

// TestOpenRefusesUnwritableDatabase ensures a database that opens but cannot take writes stops
// the start with an error naming the file, instead of a server that can record no usage.
func TestOpenRefusesUnwritableDatabase(t *testing.T) {
	storetest.SQLiteOnly(t)
	tests := []struct {
		name string
		// prepare makes the database at path unwritable and returns what to open.
		prepare func(t *testing.T, dir, path string) string
		onTmpfs bool
	}{
		{"read-only URI", func(t *testing.T, dir, path string) string { return "file:" + path + "?mode=ro" }, false},
		{"read-only mount", func(t *testing.T, dir, path string) string {
			if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
				t.Fatalf("remount read-only: %v %s", err, out)
			}
			return path
		}, true},
		{"disk full", func(t *testing.T, dir, path string) string {
			storetest.FillDisk(t, filepath.Join(dir, "filler"))
			return path
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.onTmpfs {
				dir = storetest.Tmpfs(t, "2m")
			}
			path := filepath.Join(dir, "tokenguard.db")
			storetest.OpenAt(t, path).Close()
			target := tt.prepare(t, dir, path)
			db, err := store.Open(context.Background(), target, storetest.Schema(t))
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded on a database that cannot take writes")
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
		})
	}
}
