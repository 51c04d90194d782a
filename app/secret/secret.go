// Package secret seals provider API keys at rest with AES-256-GCM. Every seal uses a fresh random
// nonce, and the additional data names the row the ciphertext belongs to, so a ciphertext copied
// to another project or provider fails to open instead of leaking a key across projects.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// Box seals and opens secrets with one AES-256-GCM key.
type Box struct {
	aead cipher.AEAD
}

// NewBox returns a Box for hexKey, which must be 64 hex characters (32 bytes).
func NewBox(hexKey string) (*Box, error) {
	key, err := hex.DecodeString(hexKey)
	if err != nil || len(key) != 32 {
		return nil, errors.New("ENCRYPTION_KEY must be 64 hex characters (32 bytes)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to ad; the result is nonce || ciphertext.
func (b *Box) Seal(plaintext []byte, ad string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		// crypto/rand never fails on supported platforms; sealing with a zero nonce would be worse.
		panic(fmt.Sprintf("secret: read random nonce: %v", err))
	}
	return b.aead.Seal(nonce, nonce, plaintext, []byte(ad))
}

// ErrOpen is returned when a ciphertext does not open: a wrong key, a tampered value, or a value
// that belongs to another row.
var ErrOpen = errors.New("secret does not decrypt with this ENCRYPTION_KEY and row")

// Open decrypts a value made by Seal with the same ad.
func (b *Box) Open(sealed []byte, ad string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// ProviderKeyAD is the additional data that binds a stored provider key to its row.
func ProviderKeyAD(projectID int64, provider string) string {
	return "provider_key:" + strconv.FormatInt(projectID, 10) + ":" + provider
}

// Mask shows enough of a provider key to recognise it and never enough to use it: the vendor's
// prefix up to its first dash-separated part and the last four characters ("sk-…abcd").
func Mask(key string) string {
	if len(key) <= 8 {
		return "…"
	}
	head := ""
	for i := 0; i < len(key) && i < 8; i++ {
		if key[i] == '-' || key[i] == '_' {
			head = key[:i+1]
			break
		}
	}
	return head + "…" + key[len(key)-4:]
}
