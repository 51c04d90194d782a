package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"tokenguard/app/config"
	"tokenguard/app/pricing"
)

// pricesReload is how often a PRICES_FILE is checked for a newer snapshot.
const pricesReload = time.Minute

// newPriceTable builds the price table from the config: its dollar prices, and the snapshot
// in PRICES_FILE when set (a file that fails validation stops the start, naming the problem).
func newPriceTable(c config.Pricing) (*pricing.Table, error) {
	price := func(p config.Price) pricing.Price {
		return pricing.PriceFromDollars(p.Input, p.CachedInput, p.CacheWrite, p.Output)
	}
	overrides := make(map[string]pricing.Price, len(c.Overrides))
	for model, p := range c.Overrides {
		overrides[model] = price(p)
	}
	opts := []pricing.Option{pricing.WithDefaultMaxOutput(c.DefaultMaxOutputTokens)}
	if c.File != "" {
		s, err := pricing.LoadFile(c.File)
		if err != nil {
			return nil, fmt.Errorf("PRICES_FILE: %w", err)
		}
		opts = append(opts, pricing.WithSnapshot(s))
	}
	t, err := pricing.New(overrides, price(c.Default), opts...)
	if err != nil {
		return nil, fmt.Errorf("pricing config: %w", err)
	}
	return t, nil
}

// watchPrices reloads PRICES_FILE, when set, until the returned stop is called.
func watchPrices(t *pricing.Table, c config.Pricing, log *slog.Logger) (stop func(context.Context) error) {
	if c.File == "" {
		return func(context.Context) error { return nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { t.WatchFile(ctx, c.File, pricesReload, log); close(done) }()
	return func(context.Context) error { cancel(); <-done; return nil }
}

// pricesFlags are the prices command's flags: the token counts to quote, bound to u.
func pricesFlags(u *pricing.Usage) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("prices", flag.ContinueOnError)
	configPath := fs.String("config", "", "TOML config file (its pricing section and PRICES_FILE)")
	for _, f := range []struct {
		dst        *int64
		name, what string
	}{
		{&u.Input, "input", "input tokens at the full price"},
		{&u.CacheRead, "cache-read", "input tokens read from a cache"},
		{&u.CacheWrite, "cache-write", "input tokens written to a cache (both durations)"},
		{&u.CacheWrite1h, "cache-write-1h", "of those, tokens written to the 1-hour cache"},
		{&u.Output, "output", "output tokens, reasoning included"},
	} {
		fs.Int64Var(f.dst, f.name, 0, f.what)
	}
	return fs, configPath
}

// runPrices prints how each model named is priced (tokenguard prices), and what the token
// counts given would cost.
func runPrices(args []string, stdout io.Writer) error {
	var u pricing.Usage
	fs, configPath := pricesFlags(&u)
	var models []string
	for len(args) > 0 {
		if err := parseFlags(fs, args, stdout); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		models, args = append(models, fs.Arg(0)), fs.Args()[1:]
	}
	if len(models) == 0 {
		return errors.New("usage: tokenguard prices MODEL… [--input N --cache-read N --cache-write N --cache-write-1h N --output N] [--config FILE]")
	}
	cfg, err := config.Load(*configPath, os.LookupEnv)
	if err != nil {
		return err
	}
	t, err := newPriceTable(cfg.Pricing)
	if err != nil {
		return err
	}
	s := t.Snapshot()
	fmt.Fprintf(stdout, "prices %s: %s, generated %s\n", s.Version(), s.Source, s.Generated)
	for _, m := range models {
		printPrice(stdout, t, m, u)
	}
	return nil
}

func printPrice(w io.Writer, t *pricing.Table, model string, u pricing.Usage) {
	x := t.Explain(model)
	fmt.Fprintf(w, "\n%s\n", model)
	switch {
	case x.ByDefault:
		fmt.Fprintf(w, "  priced by      the default price, flagged pricedByDefault (no model of the data matches)\n")
	case x.MatchRule != "":
		fmt.Fprintf(w, "  priced as      %s (%s), by %s %s\n", x.Model, x.Provider, x.Rule, x.MatchRule)
	default:
		fmt.Fprintf(w, "  priced as      %s (%s), by %s\n", x.Model, orUnknown(x.Provider), x.Rule)
	}
	fmt.Fprintf(w, "  max output     %d tokens per choice\n", x.MaxOutput)
	for _, p := range x.Periods {
		from := "always"
		if !p.From.IsZero() {
			from = "from " + p.From.Format(time.DateOnly)
		}
		for _, tr := range p.Tiers {
			fmt.Fprintf(w, "  %-14s %s: %s\n", from, tr.Label, rates(tr.Price))
			from = ""
		}
	}
	if x.Comments != "" {
		fmt.Fprintf(w, "  note           %s\n", strings.TrimSpace(x.Comments))
	}
	if u != (pricing.Usage{}) {
		q := t.Quote(model, u)
		fmt.Fprintf(w, "  cost           $%s (tier %s)\n", strconv.FormatFloat(q.Cost.Dollars(), 'f', -1, 64), q.Tier)
	}
}

// rates writes a price in dollars per million tokens, the way providers publish them.
func rates(p pricing.Price) string {
	d := func(micro int64) string { return "$" + strconv.FormatFloat(float64(micro)/1e6, 'f', -1, 64) }
	s := fmt.Sprintf("input %s, cache read %s, cache write %s (1 h %s), output %s per million tokens",
		d(p.Input), d(p.CacheRead), d(p.CacheWrite), d(p.CacheWrite1h), d(p.Output))
	if p.InputAudio != p.Input || p.OutputAudio != p.Output {
		s += fmt.Sprintf("; audio input %s, output %s", d(p.InputAudio), d(p.OutputAudio))
	}
	if p.InputImage != p.Input || p.OutputImage != p.Output {
		s += fmt.Sprintf("; image input %s, output %s", d(p.InputImage), d(p.OutputImage))
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "provider unknown"
	}
	return s
}
