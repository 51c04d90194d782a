package store

import "testing"

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT ? , ?`, `SELECT $1 , $2`},
		{`WHERE a > ?1 UNION SELECT b WHERE c > ?1`, `WHERE a > $1 UNION SELECT b WHERE c > $1`},
		{`WHERE a = ?2 AND b = ?`, `WHERE a = $2 AND b = $3`},
		{`SELECT '?', "a?b", ? -- why?` + "\n" + `, ?`, `SELECT '?', "a?b", $1 -- why?` + "\n" + `, $2`},
		{`LIKE ? ESCAPE '\'`, `LIKE $1 ESCAPE '\'`},
		{`'unterminated ?`, `'unterminated ?`},
		{`-- only a comment ?`, `-- only a comment ?`},
	} {
		if got := rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://tg:s3cret@db.example:5433/tokenguard?sslmode=require", "postgres://tg@db.example:5433/tokenguard"},
		{"postgresql://tg:s3cret@localhost/tg", "postgres://tg@localhost:5432/tg"},
		{"postgres://%zz", "(unparsable URL)"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
