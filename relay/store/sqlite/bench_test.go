package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/relay-project/relay/relay/store/storetest"
)

// BenchmarkSubmitParallel measures durable Submits (synchronous=FULL, one
// delivery each, no idempotency key) from about 64 concurrent goroutines,
// as the HTTP API would issue them. It reports msgs/s and the p50/p99
// latency of one Submit.
//
//	go test -run '^$' -bench SubmitParallel -benchtime 20000x ./relay/store/sqlite/
func BenchmarkSubmitParallel(b *testing.B) {
	benchSubmit(b, "FULL", false)
}

// BenchmarkSubmitParallelIdempotent is the same with an idempotency key on
// every message, which adds one index lookup per Submit.
func BenchmarkSubmitParallelIdempotent(b *testing.B) {
	benchSubmit(b, "FULL", true)
}

func benchSubmit(b *testing.B, synchronous string, keyed bool) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "relay.db"), Options{Synchronous: synchronous})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchSubmitParallel(b, s, keyed)
}
