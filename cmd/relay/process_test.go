package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildRelay compiles this command once per test binary run.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// relayBinary compiles this command once per test binary run, or returns
// RELAY_BENCH_BIN when set (to compare another build under the same load).
func relayBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("RELAY_BENCH_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relay-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "relay")
		cmd := exec.Command("go", "build", "-o", buildPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// countingSink is a webhook receiver that counts every delivery by
// message id, so duplicates and losses can be told apart.
type countingSink struct {
	srv *http.Server
	url string

	mu    sync.Mutex
	seen  map[string]int
	total int

	more chan struct{} // signalled (without blocking) after each delivery
}

func newCountingSink(tb testing.TB) *countingSink {
	s := &countingSink{seen: map[string]int{}, more: make(chan struct{}, 1)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.url = "http://" + l.Addr().String() + "/hook"
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ ID string }
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		s.seen[p.ID]++
		s.total++
		s.mu.Unlock()
		select {
		case s.more <- struct{}{}:
		default:
		}
	})}
	go s.srv.Serve(l)
	tb.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *countingSink) count() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen), s.total
}

// waitTotal waits until the sink has had n deliveries (duplicates count)
// or timeout passed, and returns the total.
func (s *countingSink) waitTotal(n int, timeout time.Duration) int {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		_, total := s.count()
		if total >= n {
			return total
		}
		select {
		case <-s.more:
		case <-t.C:
			_, total := s.count()
			return total
		}
	}
}

// child is a `relay serve` process.
type child struct {
	cmd    *exec.Cmd
	base   string
	stderr *bytes.Buffer
	ready  time.Duration
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeConfig(tb testing.TB, dir, sinkURL, extra string) (path, addr string) {
	addr = freeAddr(tb)
	cfg := fmt.Sprintf(`
[server]
listen = %q
[store]
path = %q
[delivery]
retry_min = "100ms"
retry_max = "1s"
shutdown_timeout = "5s"
workers = WORKERS_N
[channels.sink]
type = "webhook"
url = %q
concurrency = 32
[contacts.owner]
route = ["sink"]
sink = "owner"
%s
`, addr, filepath.Join(dir, "relay.db"), sinkURL, extra)
	cfg = strings.Replace(cfg, "WORKERS_N", strconv.Itoa(envInt("RELAY_BENCH_WORKERS", 32)), 1)
	path = filepath.Join(dir, "relay.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path, addr
}

// startChild starts `relay serve -c cfg` and waits until /readyz answers.
func startChild(tb testing.TB, bin, cfg, addr string) *child {
	tb.Helper()
	c := &child{base: "http://" + addr, stderr: &bytes.Buffer{}}
	c.cmd = exec.Command(bin, "serve", "-c", cfg, "-log-level", "warn")
	c.cmd.Env = os.Environ()
	c.cmd.Stdout = io.Discard
	c.cmd.Stderr = c.stderr
	start := time.Now()
	if err := c.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	deadline := start.Add(20 * time.Second)
	for {
		resp, err := http.Get(c.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			tb.Fatalf("relay not ready in 20s: %s", c.stderr)
		}
		time.Sleep(2 * time.Millisecond)
	}
	c.ready = time.Since(start)
	return c
}

// rssKiB reads the child's resident set size.
func (c *child) rssKiB() int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// submitter posts messages and remembers which got a 202.
type submitter struct {
	base   string
	client *http.Client
}

func newSubmitter(base string, conns int) *submitter {
	return &submitter{base: base, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
	}}
}

// submit returns the message id on 202, "" otherwise.
func (s *submitter) submit(text string) (string, error) {
	body := `{"to": "owner", "text": ` + strconv.Quote(text) + `}`
	resp, err := s.client.Post(s.base+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		io.Copy(io.Discard, resp.Body)
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var v struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return v.ID, nil
}
