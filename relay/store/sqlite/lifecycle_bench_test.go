package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// BenchmarkLifecycle measures the store's whole share of one message as the
// daemon drives it: 64 goroutines Submit while 32 workers Claim, record an
// attempt and Settle it delivered, all at synchronous=FULL. b.N messages
// are submitted; the benchmark ends when all are delivered. It reports
// msgs/s end to end, which is bounded by the single writer's cost per
// message, and accepted_msgs/s: how fast all were submitted, while the
// deliveries competed for the writer.
//
//	go test -run '^$' -bench Lifecycle -benchtime 20000x ./relay/store/sqlite/
func BenchmarkLifecycle(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "relay.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	var seq, delivered atomic.Int64
	total := int64(b.N)
	b.ResetTimer()
	start := time.Now()

	var wg, submitters sync.WaitGroup
	var submitted time.Duration
	for range 64 {
		submitters.Add(1)
		wg.Go(func() {
			defer submitters.Done()
			for {
				n := seq.Add(1)
				if n > total {
					return
				}
				m := &relay.Message{
					ID: fmt.Sprintf("01M%020d", n), Kind: relay.KindMessage, Text: "backup finished on host-7",
					CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), Submitter: "bench",
					Deliveries: []*relay.Delivery{{
						ID: fmt.Sprintf("01D%020d", n), Contact: "owner", NextAt: now, ExpiresAt: now.Add(24 * time.Hour),
						Route: []relay.Hop{{Channel: "sink", Address: "owner"}},
					}},
				}
				if _, _, err := s.Submit(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	work := make(chan *relay.Delivery, 64)
	for range 32 {
		wg.Go(func() {
			for d := range work {
				at := time.Now()
				id, err := s.StartAttempt(ctx, relay.Attempt{DeliveryID: d.ID, Channel: "sink", At: at})
				if err != nil {
					b.Error(err)
					return
				}
				a := &relay.Attempt{ID: id, DeliveryID: d.ID, Channel: "sink", At: at,
					Outcome: relay.OutcomeDelivered}
				if err := s.Settle(ctx, relay.Settlement{DeliveryID: d.ID, State: relay.StateDelivered,
					Channel: "sink", Attempt: a, At: time.Now()}); err != nil {
					b.Error(err)
					return
				}
				delivered.Add(1)
			}
		})
	}
	wg.Go(func() { submitters.Wait(); submitted = time.Since(start) })
	tick := time.NewTicker(time.Millisecond)
	for delivered.Load() < total && !b.Failed() {
		ds, err := s.Claim(ctx, time.Now(), 32)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			work <- d
		}
		if len(ds) == 0 {
			<-tick.C
		}
	}
	tick.Stop()
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(total)/submitted.Seconds(), "accepted_msgs/s")
}
