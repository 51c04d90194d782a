package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"tokenguard/store"
)

// sqliteHeader opens every SQLite 3 database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// checkDatabasePath refuses a DATABASE_URL that cannot be TokenGuard's database before anything
// is written (tokenguard.secrets is written beside it): a folder, a file that is not a SQLite
// database, or a new file in a folder that does not exist. A "file:" URI is left to SQLite, as
// store.Open does, and a PostgreSQL URL to the server. It reads at most the file's first 16 bytes and writes nothing.
func checkDatabasePath(location string) error {
	if strings.HasPrefix(location, "file:") || store.IsPostgres(location) {
		return nil
	}
	path := store.FilePath(location)
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		d, err := os.Stat(dir)
		if err != nil || !d.IsDir() {
			return fmt.Errorf("DATABASE_URL %s: the folder %s does not exist; create it first, or name a file in an existing folder", location, dir)
		}
		return nil
	case err != nil:
		return fmt.Errorf("DATABASE_URL %s: %w", location, err)
	case info.IsDir():
		return fmt.Errorf("DATABASE_URL %s is a folder; name a database file in it, such as %s", location, filepath.Join(path, "tokenguard.db"))
	case !info.Mode().IsRegular():
		return fmt.Errorf("DATABASE_URL %s is not a regular file", location)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("DATABASE_URL %s: %w", location, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, head)
	// An empty file is a new database to SQLite.
	if n == 0 && errors.Is(err, io.EOF) {
		return nil
	}
	if !bytes.Equal(head[:n], sqliteHeader) {
		return fmt.Errorf("DATABASE_URL %s is not a SQLite database; name a new file or an existing TokenGuard database", location)
	}
	return nil
}
