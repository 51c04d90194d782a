package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a delivery's signature: "t=<unix seconds>,v1=<hex HMAC-SHA256>", the
// HMAC keyed with the webhook's whole secret string over "<t>.<body>".
const SignatureHeader = "X-Tokenguard-Signature"

// DefaultTolerance is how old a signature Verify accepts by default: enough for clock skew and
// a slow receiver, short enough that a captured request cannot be replayed for long.
const DefaultTolerance = 5 * time.Minute

// Sign returns the SignatureHeader value for body sent at t with secret.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Errors Verify returns.
var (
	ErrMalformedSignature = errors.New("webhook: signature header is malformed")
	ErrStaleSignature     = errors.New("webhook: signature timestamp is outside the tolerance")
	ErrBadSignature       = errors.New("webhook: signature does not match")
)

// Verify checks a received delivery the way a receiver should: header is the SignatureHeader
// value, body the raw request body (before any JSON parsing), now the receiver's clock. The
// timestamp must be within tolerance of now (DefaultTolerance when 0) and one v1 signature must
// match, compared in constant time; several v1 entries are accepted so a sender may sign with
// an old and a new secret while they are rotated.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformedSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrMalformedSignature
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMalformedSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStaleSignature
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}
