package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tokenguard/app/config"
)

// `tokenguard prices` says which rule priced each name and what the usage given costs: a
// variant at its own list price, an unknown name by the flagged default.
func TestPricesCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"prices", "o3-deep-research", "gpt-4o-2024-08-06", "o3-deep-research-x",
		"--input", "1000000", "--output", "1000000"}, &out, &out)
	if err != nil {
		t.Fatalf("prices: %v\n%s", err, &out)
	}
	for _, want := range []string{
		"prices genai-prices@0.1.8+",
		"priced as      o3-deep-research (openai), by name",
		"cost           $50 (tier base)",
		"priced as      gpt-4o (openai), by match rule",
		"flagged pricedByDefault",
		"cost           $20 (tier base)", // the config's default, $5 + $15
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}
	if err := run(context.Background(), []string{"prices"}, &out, &out); err == nil {
		t.Error("prices without a model did not fail")
	}
}

// A PRICES_FILE that fails validation stops the start with an error naming the file.
func TestPricesFileRefusedAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, []byte(`{"schema":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default().Pricing
	c.File = path
	if _, err := newPriceTable(c); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("newPriceTable with a bad PRICES_FILE: %v", err)
	}
}
