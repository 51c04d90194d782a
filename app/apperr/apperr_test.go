package apperr_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"tokenguard/app/apperr"
)

// TestWriteJSON ensures every error reaches the client in the contract's shape, and that errors
// without a code never leak their text.
func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"budget", apperr.New(apperr.BudgetExceeded, "Daily spend limit reached"), 429, "BUDGET_EXCEEDED", "Daily spend limit reached"},
		{"wrapped", fmt.Errorf("load project 7: %w", apperr.New(apperr.NotFound, "Project not found")), 404, "NOT_FOUND", "Project not found"},
		{"too large", apperr.New(apperr.PayloadTooLarge, "Body over %d bytes", 10), 413, "PAYLOAD_TOO_LARGE", "Body over 10 bytes"},
		{"plain error", errors.New("disk I/O error at /secret/path"), 500, "INTERNAL", "Internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			apperr.WriteJSON(rec, tt.err)
			if got, want := rec.Code, tt.wantStatus; got != want {
				t.Errorf("status = %d, want %d", got, want)
			}
			if got, want := rec.Header().Get("Content-Type"), "application/json"; got != want {
				t.Errorf("content type = %q, want %q", got, want)
			}
			var body apperr.Body
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Error.Code != tt.wantCode || body.Error.Message != tt.wantMessage {
				t.Errorf("body = %+v, want code %q message %q", body.Error, tt.wantCode, tt.wantMessage)
			}
		})
	}
	if got, want := apperr.Status(apperr.New(apperr.MissingKey, "x")), http.StatusUnauthorized; got != want {
		t.Errorf("MISSING_KEY status = %d, want %d", got, want)
	}
}
