package secret_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"tokenguard/app/secret"
)

const testKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// TestSealOpen ensures a key round-trips, that sealing twice never gives the same ciphertext, and
// that a ciphertext opens only for its own row and key.
func TestSealOpen(t *testing.T) {
	box, err := secret.NewBox(testKey)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("sk-proj-canary-1234")
	ad := secret.ProviderKeyAD(1, "openai")
	a, b := box.Seal(plain, ad), box.Seal(plain, ad)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same key are identical: nonce reused")
	}
	if bytes.Contains(a, plain) {
		t.Fatal("ciphertext contains the plaintext")
	}
	got, err := box.Open(a, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want %q", got, err, plain)
	}

	other, _ := secret.NewBox(strings.Repeat("ab", 32))
	tampered := append([]byte(nil), a...)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other project":  func() ([]byte, error) { return box.Open(a, secret.ProviderKeyAD(2, "openai")) },
		"other provider": func() ([]byte, error) { return box.Open(a, secret.ProviderKeyAD(1, "anthropic")) },
		"other key":      func() ([]byte, error) { return other.Open(a, ad) },
		"tampered":       func() ([]byte, error) { return box.Open(tampered, ad) },
		"truncated":      func() ([]byte, error) { return box.Open(a[:5], ad) },
	} {
		if _, err := open(); !errors.Is(err, secret.ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func TestNewBoxRejectsBadKeys(t *testing.T) {
	for _, k := range []string{"", "abc", strings.Repeat("zz", 32), strings.Repeat("ab", 16)} {
		if _, err := secret.NewBox(k); err == nil {
			t.Errorf("NewBox(%q) accepted a bad key", k)
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sk-proj-abcdefghijklmnop", "sk-…mnop"},
		{"sk-ant-api03-xyzxyzxyz1234", "sk-…1234"},
		{"AIzaSyA1234567890abcd", "…abcd"},
		{"short", "…"},
	}
	for _, tt := range tests {
		if got := secret.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
