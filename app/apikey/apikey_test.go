package apikey_test

import (
	"strings"
	"testing"

	"tokenguard/app/apikey"
)

// TestGenerateParse ensures a generated key parses back to its own lookup prefix and that keys
// are never repeated.
func TestGenerateParse(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		k, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k.Full, "tg_live_") || len(k.Full) < len("tg_live_")+32 {
			t.Fatalf("key %q: want tg_live_ and at least 32 secret characters", k.Full)
		}
		prefix, ok := apikey.Parse(k.Full)
		if !ok {
			t.Fatalf("Parse(%q) rejected a generated key", k.Full)
		}
		if got, want := prefix, k.Prefix; got != want {
			t.Fatalf("prefix = %q, want %q", got, want)
		}
		if seen[k.Full] || seen[k.Prefix] {
			t.Fatalf("repeated key or prefix %q", k.Prefix)
		}
		seen[k.Full], seen[k.Prefix] = true, true
	}
}

// TestParseRejectsJunk ensures anything but an intact key is rejected without I/O.
func TestParseRejectsJunk(t *testing.T) {
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	flip := []byte(k.Full)
	if flip[20] == 'a' {
		flip[20] = 'b'
	} else {
		flip[20] = 'a'
	}
	for _, s := range []string{
		"",
		"tg_live_",
		"sk-proj-abcdef",
		k.Full[:len(k.Full)-1],
		k.Full + "0",
		string(flip),
		"tg_test_" + k.Full[len("tg_live_"):],
		strings.Replace(k.Full, k.Full[10:11], "-", 1),
	} {
		if _, ok := apikey.Parse(s); ok {
			t.Errorf("Parse(%q) accepted junk", s)
		}
	}
}

// TestHashVerify ensures only the exact key verifies against its stored hash.
func TestHashVerify(t *testing.T) {
	a, _ := apikey.Generate()
	b, _ := apikey.Generate()
	h, err := apikey.Hash(a.Full)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, a.Full) {
		t.Fatal("hash contains the key")
	}
	if !apikey.Verify(h, a.Full) {
		t.Error("own key does not verify")
	}
	if apikey.Verify(h, b.Full) {
		t.Error("another key verifies")
	}
}

func BenchmarkParse(b *testing.B) {
	k, _ := apikey.Generate()
	for b.Loop() {
		apikey.Parse(k.Full)
	}
}

// TestWithPrefix ensures a key made for a known prefix passes Parse with that prefix, is new,
// and that anything but a lookup prefix is refused.
func TestWithPrefix(t *testing.T) {
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := apikey.WithPrefix(k.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if prefix, ok := apikey.Parse(forged.Full); !ok || prefix != k.Prefix || forged.Prefix != k.Prefix {
		t.Fatalf("Parse(%q) = %q, %v; want %q", forged.Full, prefix, ok, k.Prefix)
	}
	if forged.Full == k.Full {
		t.Fatal("WithPrefix repeated the key")
	}
	for _, bad := range []string{"tg_live_", k.Full, "sk_live_" + k.Prefix[len("tg_live_"):]} {
		if _, err := apikey.WithPrefix(bad); err == nil {
			t.Errorf("WithPrefix(%q) accepted a non-prefix", bad)
		}
	}
}
