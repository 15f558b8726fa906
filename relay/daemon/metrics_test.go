package daemon_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMetricsPassPromtool: after traffic with a failover, /metrics has
// the documented series and passes `promtool check metrics` (Debian's
// prometheus package; .ci/run installs it).
func TestMetricsPassPromtool(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("500")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "count me"}`)
	n.waitStatus(id, "delivered", 10*time.Second)
	r := n.do("GET", "/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	body := string(r.body)
	for _, want := range []string{
		`relay_messages_accepted_total 1`,
		`relay_attempts_total{channel="primary",outcome="temporary"} 1`,
		`relay_attempts_total{channel="backup",outcome="delivered"} 1`,
		`relay_failovers_total{from="primary",to="backup"} 1`,
		`relay_deliveries_total{channel="backup",state="delivered"} 1`,
		`relay_channel_state{channel="backup",state="up"} 1`,
		`relay_queue_depth{state="queued"} 0`,
		`relay_delivery_latency_seconds_count 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); series checked above")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(r.body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
