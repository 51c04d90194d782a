package translate_test

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"

	"tokenguard/app/provider"
	"tokenguard/app/provider/providertest"
	"tokenguard/app/provider/translate"
)

// BenchmarkRequest is the translation of one non-streamed request (the caller's body decoded
// and encoded for the target) plus its answer (decoded and encoded for the caller): the CPU a
// cross-provider fallback adds to a request. Budget: 30 µs.
func BenchmarkRequest(b *testing.B) {
	for _, caller := range apis {
		body, err := os.ReadFile("testdata/request/" + string(caller) + ".json")
		if err != nil {
			b.Fatal(err)
		}
		for _, target := range apis {
			if target == caller {
				continue
			}
			answer := providertest.Wire(b, string(target), false)
			b.Run(string(caller)+"-to-"+string(target), func(b *testing.B) {
				b.ReportAllocs()
				defer reportCPU(b, cpuTime())
				var out []byte
				for b.Loop() {
					r, err := translate.DecodeRequest(caller, body, false, false)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := translate.EncodeRequest(r, target, models[target], 512); err != nil {
						b.Fatal(err)
					}
					resp, ok := translate.DecodeResponse(target, answer)
					if !ok {
						b.Fatal("undecodable answer")
					}
					out = translate.EncodeResponse(out[:0], caller, &resp, models[target], now)
				}
			})
		}
	}
}

// cpuTime is the CPU (user + system) this process has used so far: on a shared machine wall
// time per operation overstates what the translation costs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/1000/float64(b.N), "cpu-µs/op")
}

// BenchmarkStreamEvent is the translation of one streamed event, averaged over the recorded
// streams (text deltas, a tool call, usage). Budget: 2 µs an event; the allocations per event
// are those of starting a tool call (its id and name kept for formats that need them later).
func BenchmarkStreamEvent(b *testing.B) {
	for _, caller := range apis {
		for _, target := range apis {
			if target == caller {
				continue
			}
			type event struct{ name, data []byte }
			var events []event
			er := provider.NewEventReader(bytes.NewReader(providertest.Wire(b, string(target), true)))
			for {
				_, name, data, err := er.Next()
				if err != nil {
					break
				}
				e := event{bytes.Clone(name), bytes.Clone(data)}
				events = append(events, e)
				if bytes.Contains(data, []byte("Let me check")) {
					// A long answer is mostly text deltas: 200 of them.
					for range 199 {
						events = append(events, e)
					}
				}
			}
			r := &translate.Request{IncludeUsage: true}
			b.Run(string(caller)+"-from-"+string(target), func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime()
				n := 0
				for b.Loop() {
					st := translate.NewStream(caller, target, models[target], r, now)
					for _, e := range events {
						st.Event(e.name, e.data)
					}
					st.End()
					n += len(events)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(n), "cpu-ns/event")
			})
		}
	}
}
