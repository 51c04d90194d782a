package alert_test

import (
	"context"
	"testing"

	"tokenguard/app/alert"
	"tokenguard/app/budget"
	"tokenguard/app/mail"
	"tokenguard/store/storetest"
)

// BenchmarkOnCrossing is the cost a crossing adds to the request that caused it: a clock read and
// a non-blocking channel send. The queue holds up to 2^20 crossings, so runs of up to that many
// iterations measure sends that never drop (run with -benchtime 200000x).
func BenchmarkOnCrossing(b *testing.B) {
	db := storetest.Open(b)
	m, err := mail.New(db, mail.Options{})
	if err != nil {
		b.Fatal(err)
	}
	a, err := alert.New(alert.Options{DB: db, Mailer: m, QueueSize: min(b.N+1, 1<<20)})
	if err != nil {
		b.Fatal(err)
	}
	cs := []budget.Crossing{{Budget: budget.ProjectDaily, Threshold: budget.FallbackLevel, ProjectID: 1, WorkspaceID: 1}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a.OnCrossing(cs)
	}
	b.StopTimer()
	// Abandon the queued crossings rather than wait for the worker to look each one up.
	abandon, cancel := context.WithCancel(b.Context())
	cancel()
	a.Close(abandon)
	m.Close(abandon)
}
