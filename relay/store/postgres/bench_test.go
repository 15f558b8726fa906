package postgres

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// BenchmarkSubmitParallel measures durable Submits (one delivery each, no
// idempotency key) from about 64 concurrent goroutines, as the HTTP API
// would issue them, like the SQLite store's benchmark of the same name. It
// reports msgs/s and the p50/p99 latency of one Submit. The throwaway
// cluster runs with fsync=off unless RELAY_TEST_PG_FSYNC=on;
// RELAY_BENCH_CONNS sets the pool size (Options.MaxConns):
//
//	RELAY_TEST_PG_FSYNC=on go test -run '^$' -bench SubmitParallel -benchtime 20000x ./relay/store/postgres/
func BenchmarkSubmitParallel(b *testing.B) {
	benchSubmit(b, false)
}

// BenchmarkSubmitParallelIdempotent is the same with an idempotency key on
// every message.
func BenchmarkSubmitParallelIdempotent(b *testing.B) {
	benchSubmit(b, true)
}

func benchSubmit(b *testing.B, keyed bool) {
	ctx := context.Background()
	conns, _ := strconv.Atoi(os.Getenv("RELAY_BENCH_CONNS"))
	s := open(b, newDatabase(b), Options{MaxConns: int32(conns)})
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
