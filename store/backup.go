package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Backup writes a consistent copy of the database at src to dst while other processes keep
// reading and writing it. It refuses an existing dst, writes to a temporary name beside it,
// checks the copy's integrity, and only then renames it into place, so dst is either absent or a
// complete, checked database.
//
// On PostgreSQL it copies nothing and returns an error saying to use pg_dump: the server's own
// tools take a consistent copy of a live database, and a file written here could not be
// restored into one.
func Backup(ctx context.Context, src, dst string) error {
	if IsPostgres(src) {
		return pgBackupAdvice(src)
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("backup target %s already exists; choose a new name", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check backup target %s: %w", dst, err)
	}
	if _, err := os.Stat(FilePath(src)); err != nil {
		return fmt.Errorf("open database %s: %w", src, err)
	}

	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".partial")
	os.Remove(tmp) // a leftover from an interrupted backup
	defer os.Remove(tmp)

	conn, err := sql.Open("sqlite", dsn(src, false))
	if err != nil {
		return fmt.Errorf("open database %s: %w", src, err)
	}
	defer conn.Close()
	// VACUUM INTO reads one snapshot of the database, so writers carry on and the copy is
	// consistent.
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return fmt.Errorf("copy database: %w", err)
	}

	if err := checkIntegrity(ctx, tmp); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Link(tmp, dst); err != nil { // unlike rename, link fails if dst appeared meanwhile
		return fmt.Errorf("move backup into place: %w", err)
	}
	return nil
}

// pgBackupAdvice is Backup's answer on PostgreSQL: what to run instead, with the connection
// details filled in (never the password).
func pgBackupAdvice(location string) error {
	target := redactURL(location)
	schema := ""
	if u, err := url.Parse(location); err == nil {
		if sp := u.Query().Get("search_path"); sp != "" {
			// Quoted for the shell: the name comes from the URL.
			schema = " --schema='" + strings.ReplaceAll(strings.TrimSpace(strings.Split(sp, ",")[0]), "'", `'\''`) + "'"
		}
	}
	return fmt.Errorf("tokenguard backup copies the embedded SQLite database, and DATABASE_URL is PostgreSQL (%s): nothing was written.\n"+
		"Back it up with PostgreSQL's own tools, which take a consistent copy while every replica keeps running, e.g.\n"+
		"  pg_dump --format=custom%s --file=tokenguard.dump '%s'\n"+
		"(the password from PGPASSWORD or ~/.pgpass), and restore it with pg_restore. Keep ENCRYPTION_KEY with the dump: the provider keys in it are sealed with it",
		target, schema, target)
}

// FilePath turns a database location — a path or a "file:" URI — into the file's path.
func FilePath(location string) string {
	p := strings.TrimPrefix(location, "file:")
	p, _, _ = strings.Cut(p, "?")
	return p
}

func checkIntegrity(ctx context.Context, path string) error {
	conn, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return fmt.Errorf("open backup copy: %w", err)
	}
	defer conn.Close()
	var result string
	if err := conn.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&result); err != nil {
		return fmt.Errorf("check backup copy: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("backup copy failed integrity_check: %s", result)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync backup: %w", err)
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity_check on the open database and returns an error unless it
// reports ok.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var result string
	if err := db.Read.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&result); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("integrity check: %s", result)
	}
	return nil
}
