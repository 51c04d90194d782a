// Package apikey makes and checks TokenGuard project keys: "tg_live_" + a base62 secret + a
// base62 CRC-32 checksum of the secret. The checksum lets the proxy reject a mistyped or made-up
// key without touching the database or bcrypt; the lookup prefix finds the one row whose bcrypt
// hash is then verified.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

const (
	// Scheme starts every TokenGuard key.
	Scheme = "tg_live_"

	alphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	secretLen   = 40 // 40 base62 characters ≈ 238 bits
	checksumLen = 6  // 62^6 > 2^32
	prefixLen   = 12 // secret characters kept in the lookup prefix
	keyLen      = len(Scheme) + secretLen + checksumLen
)

// Key is a freshly generated key. Full exists only until it is shown to the user once.
type Key struct {
	Full   string
	Prefix string
}

// Generate returns a new random key.
func Generate() (Key, error) { return WithPrefix("") }

// WithPrefix returns a new random key with a valid checksum whose lookup prefix is prefix (a
// Key.Prefix); an empty prefix gives a fresh one. Anyone who has seen a prefix can make such
// keys: the proxy's tests use it to show that they are refused cheaply.
func WithPrefix(prefix string) (Key, error) {
	if prefix != "" && (len(prefix) != len(Scheme)+prefixLen || !strings.HasPrefix(prefix, Scheme)) {
		return Key{}, fmt.Errorf("generate key: %q is not a lookup prefix", prefix)
	}
	secret := make([]byte, secretLen)
	// Rejection sampling keeps every base62 character equally likely.
	buf := make([]byte, 64)
	for n := 0; n < secretLen; {
		if _, err := rand.Read(buf); err != nil {
			return Key{}, fmt.Errorf("generate key: %w", err)
		}
		for _, b := range buf {
			if b < 248 && n < secretLen { // 248 = 4*62
				secret[n] = alphabet[b%62]
				n++
			}
		}
	}
	copy(secret, strings.TrimPrefix(prefix, Scheme))
	full := Scheme + string(secret) + checksum(secret)
	return Key{Full: full, Prefix: Scheme + string(secret[:prefixLen])}, nil
}

// Parse checks that s has the shape and checksum of a TokenGuard key and returns its lookup
// prefix. It does no I/O, so junk costs nothing.
func Parse(s string) (prefix string, ok bool) {
	if len(s) != keyLen || !strings.HasPrefix(s, Scheme) {
		return "", false
	}
	body := s[len(Scheme):]
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(alphabet, body[i]) < 0 {
			return "", false
		}
	}
	secret := []byte(body[:secretLen])
	if body[secretLen:] != checksum(secret) {
		return "", false
	}
	return s[:len(Scheme)+prefixLen], true
}

// LooksLike reports whether s claims to be a TokenGuard key (valid or not), so the proxy never
// forwards such a value upstream as if it were a provider key.
func LooksLike(s string) bool { return strings.HasPrefix(s, "tg_") }

// Hash returns the bcrypt hash stored for key.
func Hash(full string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(full), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash key: %w", err)
	}
	return string(h), nil
}

// Verify reports whether full matches the stored bcrypt hash.
func Verify(hash, full string) bool {
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(full))
	return err == nil
}

// CacheKey is the in-memory identity of a verified key: a SHA-256, so the cache never holds the
// key itself.
func CacheKey(full string) [32]byte { return sha256.Sum256([]byte(full)) }

func checksum(secret []byte) string {
	sum := crc32.ChecksumIEEE(secret)
	out := make([]byte, checksumLen)
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[sum%62]
		sum /= 62
	}
	return string(out)
}
