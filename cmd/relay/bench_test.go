package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
//	accepted_msg/s, p50_accept_ms, p99_accept_ms   while the load runs
//	delivered_msg/s   from the start of the load until the sink has all
//	idle_rss_MiB, loaded_rss_MiB (peak), ready_ms (start to /readyz 200)
//	daemon_cpu_us/msg   the daemon's CPU time (user+system) from the start
//	                    of the load until all were delivered, per message:
//	                    the figure to compare runs by when others load the
//	                    machine
//
// The load comes from wrk (a C load generator; apt-get install wrk) in its
// own process when it is on PATH, else from Go clients in this test
// process, which spend about as much CPU as the daemon's HTTP server; set
// RELAY_BENCH_LOADGEN=go or =wrk to choose. Both keep RELAY_BENCH_CLIENTS
// requests outstanding, one per connection.
//
// Run: go test -run '^$' -bench Daemon -benchtime 1x ./cmd/relay
func BenchmarkDaemon(b *testing.B) {
	clients := envInt("RELAY_BENCH_CLIENTS", 64)
	dur := time.Duration(envInt("RELAY_BENCH_SECONDS", 5)) * time.Second
	gen := os.Getenv("RELAY_BENCH_LOADGEN")
	if gen == "" {
		gen = "go"
		if _, err := exec.LookPath("wrk"); err == nil {
			gen = "wrk"
		}
	}
	bin := relayBinary(b)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		sink := newCountingSink(b)
		cfg, addr := writeConfig(b, dir, sink.url, "")
		c := startChild(b, bin, cfg, addr)
		time.Sleep(300 * time.Millisecond) // let start-up garbage settle
		idle := c.rssKiB()

		var peak atomic.Int64
		stopRSS := make(chan struct{})
		var rssWG sync.WaitGroup
		rssWG.Go(func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopRSS:
					return
				case <-t.C:
					peak.Store(max(peak.Load(), int64(c.rssKiB())))
				}
			}
		})
		cpu0 := c.cpuTime()
		start := time.Now()
		var res loadResult
		switch gen {
		case "wrk":
			res = wrkLoad(b, dir, c.base, clients, dur)
		case "go":
			res = goLoad(c.base, clients, dur)
		default:
			b.Fatalf("RELAY_BENCH_LOADGEN=%q: want wrk or go", gen)
		}
		// Deliveries continue after the load stops; measure until the sink
		// has them all (or 60 s).
		delivered := sink.waitTotal(int(res.accepted), 60*time.Second)
		deliveredIn := time.Since(start)
		cpu := c.cpuTime() - cpu0
		close(stopRSS)
		rssWG.Wait()

		b.ReportMetric(float64(res.accepted)/res.elapsed.Seconds(), "accepted_msg/s")
		b.ReportMetric(ms(res.p50), "p50_accept_ms")
		b.ReportMetric(ms(res.p99), "p99_accept_ms")
		b.ReportMetric(float64(delivered)/deliveredIn.Seconds(), "delivered_msg/s")
		b.ReportMetric(float64(idle)/1024, "idle_rss_MiB")
		b.ReportMetric(float64(peak.Load())/1024, "loaded_rss_MiB")
		b.ReportMetric(float64(c.ready.Milliseconds()), "ready_ms")
		if delivered > 0 {
			b.ReportMetric(float64(cpu.Microseconds())/float64(delivered), "daemon_cpu_us/msg")
		}
		b.Logf("load %s, %d clients, %s: accepted %d (refused or failed %d), delivered %d (all by %s); daemon CPU %s, load generator CPU %s",
			gen, clients, dur, res.accepted, res.failed, delivered, deliveredIn.Round(time.Millisecond),
			cpu.Round(time.Millisecond), res.cpu.Round(time.Millisecond))
		if int64(delivered) < res.accepted {
			b.Errorf("only %d of %d accepted messages delivered within 60 s", delivered, res.accepted)
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.cmd.Wait()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadResult is what a load generator measured.
type loadResult struct {
	accepted, failed int64
	elapsed          time.Duration
	p50, p99         time.Duration // of requests answered
	cpu              time.Duration // the generator's own CPU, when known
}

// wrkScript posts a distinct message per request and prints wrk's totals
// and percentiles in one parseable line. Without a response() function wrk
// does not hand each response to Lua, which keeps it cheap; non-2xx
// answers are counted in summary.errors.status.
const wrkScript = `
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/messages", nil, '{"to": "owner", "text": "bench ' .. n .. '"}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d status_errors=%d other_errors=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkLoad runs wrk against base for dur with clients connections.
func wrkLoad(b *testing.B, dir, base string, clients int, dur time.Duration) loadResult {
	script := filepath.Join(dir, "post.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		b.Fatal(err)
	}
	threads := envInt("RELAY_BENCH_WRK_THREADS", 1)
	cmd := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(clients),
		"-d", fmt.Sprintf("%ds", int(dur.Seconds())), "--timeout", "10s", "-s", script, base+"/v1/messages")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "RESULT ") {
			line = l
		}
	}
	v := map[string]int64{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "RESULT ")) {
		k, s, _ := strings.Cut(f, "=")
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("wrk output %q: %v", line, err)
		}
		v[k] = n
	}
	if line == "" || v["duration_us"] == 0 {
		b.Fatalf("wrk printed no result:\n%s", out)
	}
	failed := v["status_errors"] + v["other_errors"]
	return loadResult{
		accepted: v["requests"] - failed, failed: failed,
		elapsed: time.Duration(v["duration_us"]) * time.Microsecond,
		p50:     time.Duration(v["p50_us"]) * time.Microsecond,
		p99:     time.Duration(v["p99_us"]) * time.Microsecond,
		cpu:     cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
	}
}

// goLoad runs clients goroutines in this process, each posting one message
// after the other for dur.
func goLoad(base string, clients int, dur time.Duration) loadResult {
	sub := newSubmitter(base, clients)
	var accepted, failed atomic.Int64
	lat := make([][]time.Duration, clients)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for j := 0; time.Now().Before(deadline); j++ {
				t0 := time.Now()
				if _, err := sub.submit(fmt.Sprintf("bench %d/%d", w, j)); err != nil {
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	res := loadResult{accepted: accepted.Load(), failed: failed.Load(), elapsed: time.Since(start)}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		res.p50, res.p99 = all[(len(all)-1)/2], all[(len(all)-1)*99/100]
	}
	return res
}

// cpuTime reads the child's user+system CPU time from /proc/PID/stat
// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func (c *child) cpuTime() time.Duration {
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	// The command name (field 2) may hold spaces; fields after it follow ")".
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0
	}
	fs := strings.Fields(line[i+1:])
	if len(fs) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fs[11], 10, 64)
	st, _ := strconv.ParseInt(fs[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
