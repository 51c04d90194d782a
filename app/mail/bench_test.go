package mail_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tokenguard/app/mail"
	"tokenguard/app/mail/mailtest"
	"tokenguard/store/storetest"
)

// BenchmarkSend measures what a request pays to send mail: validation and an in-memory enqueue.
func BenchmarkSend(b *testing.B) {
	db := storetest.Open(b)
	m, err := mail.New(db, mail.Options{QueueSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	msg := message("dev@example.com")
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliver measures one message's way from Send to the server's inbox: record, compose,
// an SMTP session over loopback (a new connection per message), record the outcome.
func BenchmarkDeliver(b *testing.B) {
	srv := mailtest.Start(b, mailtest.Options{})
	db := storetest.Open(b)
	m, err := mail.New(db, mail.Options{SMTP: srv.SMTP(mail.TLSStartTLS), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	n := 0
	for b.Loop() {
		n++
		if err := m.Send(message(fmt.Sprintf("dev%d@example.com", n))); err != nil {
			b.Fatal(err)
		}
		srv.Wait(n, time.Minute)
	}
}
