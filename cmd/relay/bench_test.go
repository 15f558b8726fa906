package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDaemon runs the real daemon (a `relay serve` child, SQLite at
// synchronous=FULL) over loopback HTTP with RELAY_BENCH_CLIENTS concurrent
// clients (default 64) for RELAY_BENCH_SECONDS (default 5), delivering to
// a loopback webhook sink, and reports:
//
//	accepted_msg/s, p50_accept_ms, p99_accept_ms, delivered_msg/s,
//	idle_rss_MiB, loaded_rss_MiB, ready_ms
//
// Run: go test -run '^$' -bench Daemon -benchtime 1x ./cmd/relay
func BenchmarkDaemon(b *testing.B) {
	clients := envInt("RELAY_BENCH_CLIENTS", 64)
	dur := time.Duration(envInt("RELAY_BENCH_SECONDS", 5)) * time.Second
	bin := relayBinary(b)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		sink := newCountingSink(b)
		cfg, addr := writeConfig(b, dir, sink.url, "")
		c := startChild(b, bin, cfg, addr)
		time.Sleep(300 * time.Millisecond)
		idle := c.rssKiB()

		sub := newSubmitter(c.base, clients)
		var accepted atomic.Int64
		lat := make([][]time.Duration, clients)
		var peak atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < clients; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					t0 := time.Now()
					if _, err := sub.submit(fmt.Sprintf("bench %d/%d", w, j)); err == nil {
						lat[w] = append(lat[w], time.Since(t0))
						accepted.Add(1)
					}
				}
			}(w)
		}
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if r := int64(c.rssKiB()); r > peak.Load() {
						peak.Store(r)
					}
				}
			}
		}()
		time.Sleep(dur)
		close(stop)
		wg.Wait()
		elapsed := time.Since(start)
		n := accepted.Load()
		// Deliveries continue after the load stops; measure until the sink
		// has them all (or 60 s).
		deadline := time.Now().Add(60 * time.Second)
		for {
			d, _ := sink.count()
			if int64(d) >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		deliveredIn := time.Since(start)
		delivered, _ := sink.count()
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		pct := func(p float64) float64 {
			if len(all) == 0 {
				return 0
			}
			return float64(all[int(float64(len(all)-1)*p)]) / float64(time.Millisecond)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "accepted_msg/s")
		b.ReportMetric(pct(0.50), "p50_accept_ms")
		b.ReportMetric(pct(0.99), "p99_accept_ms")
		b.ReportMetric(float64(delivered)/deliveredIn.Seconds(), "delivered_msg/s")
		b.ReportMetric(float64(idle)/1024, "idle_rss_MiB")
		b.ReportMetric(float64(peak.Load())/1024, "loaded_rss_MiB")
		b.ReportMetric(float64(c.ready.Milliseconds()), "ready_ms")
		b.Logf("%d clients, %s: accepted %d, delivered %d (all by %s)", clients, dur, n, delivered, deliveredIn.Round(time.Millisecond))
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.cmd.Wait()
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
