package postgres

import (
	"os"
	"strconv"
	"testing"

	"github.com/relay-project/relay/relay/store/storetest"
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
	conns, _ := strconv.Atoi(os.Getenv("RELAY_BENCH_CONNS"))
	s := open(b, newDatabase(b), Options{MaxConns: int32(conns)})
	storetest.BenchSubmitParallel(b, s, keyed)
}
