package storetest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// BenchSubmitParallel measures durable Submits on s (one delivery each;
// with keyed, an idempotency key on each) from about 64 concurrent
// goroutines, as the HTTP API would issue them. It reports msgs/s and the
// p50/p99 latency of one Submit. Every store's benchmark calls it, so their
// figures compare.
func BenchSubmitParallel(b *testing.B, s relay.Store, keyed bool) {
	ctx := context.Background()
	// SetParallelism multiplies GOMAXPROCS: aim for 64 goroutines.
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	now := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			m := &relay.Message{
				ID: fmt.Sprintf("01M%020d", n), Kind: relay.KindMessage, Text: "backup finished on host-7",
				CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), Submitter: "bench",
				Deliveries: []*relay.Delivery{{
					ID: fmt.Sprintf("01D%020d", n), Contact: "owner", NextAt: now, ExpiresAt: now.Add(24 * time.Hour),
					Route: []relay.Hop{{Channel: "telegram", Address: "123456"}, {Channel: "email", Address: "o@example.org"}},
				}},
			}
			if keyed {
				m.IdempotencyKey, m.RequestHash = fmt.Sprintf("key-%d", n), "hash"
			}
			t0 := time.Now()
			if _, _, err := s.Submit(ctx, m); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
