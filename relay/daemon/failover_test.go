package daemon_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// twoHooks is a config with a primary and a backup webhook channel.
func twoHooks(primaryURL, backupURL, extra string) string {
	return fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[store]
path = "%%DIR%%/relay.db"
[delivery]
attempt_timeout = "300ms"
retry_min = "50ms"
retry_max = "200ms"
rate_limit_wait = "1s"
shutdown_timeout = "2s"
admin = "admin"
[channels.primary]
type = "webhook"
url = "%s"
health = { interval = "1h", fall = 3, rise = 1 }
[channels.backup]
type = "webhook"
url = "%s"
health = { interval = "1h", fall = 3, rise = 1 }
[channels.log]
type = "console"
file = "%%DIR%%/admin.log"
[contacts.owner]
route = ["primary", "backup"]
primary = "owner-p"
backup = "owner-b"
[contacts.admin]
route = ["log"]
log = "admin"
%s
`, primaryURL, backupURL, extra)
}

// TestFailover checks SPEC's failover: a temporary failure on the primary
// (5xx, a hang past the attempt timeout, a refused connection) moves the
// delivery to the next channel at once, and the message shows the route.
func TestFailover(t *testing.T) {
	for _, c := range []struct {
		name, mode, outcome string
	}{
		{"5xx", "500", "temporary"},
		{"hang", "hang", "ambiguous"},
		{"refused", "refused", "temporary"},
	} {
		t.Run(c.name, func(t *testing.T) {
			primary, backup := newSink(t), newSink(t)
			url := primary.srv.URL
			if c.mode == "refused" {
				url = "http://" + closedAddr(t)
			} else {
				primary.set(c.mode)
			}
			n := startDaemon(t, "", twoHooks(url, backup.srv.URL, ""))
			id := n.accept(`{"to": "owner", "text": "new inquiry from table 4"}`)
			m := n.waitStatus(id, "delivered", 10*time.Second)
			d := m.Deliveries[0]
			if d.Channel != "backup" {
				t.Fatalf("delivered on %q, want backup", d.Channel)
			}
			if got, want := routeOf(d), "primary:"+c.outcome+" backup:delivered"; got != want {
				t.Fatalf("route %q, want %q", got, want)
			}
			if got := backup.texts(); len(got) != 1 || got[0] != "new inquiry from table 4" {
				t.Fatalf("backup received %v", got)
			}
			if c.outcome == "ambiguous" && (len(d.MayAlso) != 1 || d.MayAlso[0] != "primary") {
				t.Fatalf("an ambiguous attempt must be shown: %+v", d)
			}
		})
	}
}

// TestPermanentErrorDoesNotBlameChannel: a 4xx for one recipient moves on
// without marking the channel down, and is not retried there.
func TestPermanentErrorDoesNotBlameChannel(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("400")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	for i := 0; i < 4; i++ {
		id := n.accept(fmt.Sprintf(`{"to": "owner", "text": "m%d"}`, i))
		m := n.waitStatus(id, "delivered", 10*time.Second)
		if routeOf(m.Deliveries[0]) != "primary:permanent backup:delivered" {
			t.Fatalf("route %s", routeOf(m.Deliveries[0]))
		}
	}
	if s := n.channelState("primary"); s == "down" {
		t.Fatal("permanent errors for a recipient marked the channel down")
	}
}

// TestAuthErrorMarksChannelDown: a 401 marks the channel down at once, so
// the next delivery skips it without an attempt.
func TestAuthErrorMarksChannelDown(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("401")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "one"}`)
	m := n.waitStatus(id, "delivered", 10*time.Second)
	if routeOf(m.Deliveries[0]) != "primary:auth backup:delivered" {
		t.Fatalf("route %s", routeOf(m.Deliveries[0]))
	}
	if s := n.channelState("primary"); s != "down" {
		t.Fatalf("primary is %s after an auth error, want down", s)
	}
	id = n.accept(`{"to": "owner", "text": "two"}`)
	m = n.waitStatus(id, "delivered", 10*time.Second)
	if routeOf(m.Deliveries[0]) != "backup:delivered" {
		t.Fatalf("a down channel was tried: %s", routeOf(m.Deliveries[0]))
	}
}

// TestRetryAfterIsHonoured: a 429 with a short Retry-After is waited out
// and the same channel retried; nothing is sent before it passes.
func TestRetryAfterIsHonoured(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("429:1")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	start := time.Now()
	id := n.accept(`{"to": "owner", "text": "patience"}`)
	m := n.waitStatus(id, "delivered", 10*time.Second)
	if routeOf(m.Deliveries[0]) != "primary:rate_limited primary:delivered" {
		t.Fatalf("route %s", routeOf(m.Deliveries[0]))
	}
	a := m.Deliveries[0].Attempts
	if gap := a[1].At.Sub(a[0].At); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After: 1s passed", gap)
	}
	_ = start
	if len(backup.got()) != 0 {
		t.Fatal("failed over although the wait was within rate_limit_wait")
	}
}

// TestRouteDownBacksOffThenDelivers: with every channel failing the
// delivery stays queued and retries with backoff, primary first again;
// once the primary recovers it is delivered there.
func TestRouteDownBacksOffThenDelivers(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("500")
	backup.set("500")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "waiting"}`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := n.message(id)
		if m.Status != "queued" && m.Status != "sending" {
			t.Fatalf("status %s while every channel fails", m.Status)
		}
		if len(m.Deliveries[0].Attempts) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no retries")
		}
		time.Sleep(10 * time.Millisecond)
	}
	primary.set("ok")
	backup.set("ok")
	m := n.waitStatus(id, "delivered", 10*time.Second)
	d := m.Deliveries[0]
	// Every pass starts at the primary.
	for i := 0; i+1 < len(d.Attempts)-1; i += 2 {
		if d.Attempts[i].Channel != "primary" {
			t.Fatalf("pass %d did not start with the primary: %s", i/2, routeOf(d))
		}
	}
	if d.Channel != "primary" {
		t.Fatalf("after recovery delivered on %s, want the primary (%s)", d.Channel, routeOf(d))
	}
}

// TestExpiryNotifiesAdmin: a delivery whose TTL passes while its route is
// down ends expired, and the admin gets a notice over the admin's route.
func TestExpiryNotifiesAdmin(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	primary.set("500")
	backup.set("500")
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	id := n.accept(`{"to": "owner", "text": "too late", "ttl": "400ms"}`)
	n.waitStatus(id, "expired", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := readFile(n.dir + "/admin.log")
		if strings.Contains(b, "expired undelivered") && strings.Contains(b, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no expiry notice to the admin; admin.log: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLargeTextDeliveredWhole: a channel without a text limit gets a long
// text in one piece (splitting is covered in relay's and dispatch's tests).
func TestLargeTextDeliveredWhole(t *testing.T) {
	primary, backup := newSink(t), newSink(t)
	n := startDaemon(t, "", twoHooks(primary.srv.URL, backup.srv.URL, ""))
	text := strings.Repeat("가나다 ", 10000)
	id := n.accept(fmt.Sprintf(`{"to": "owner", "text": %q}`, text))
	n.waitStatus(id, "delivered", 10*time.Second)
	if got := primary.texts(); len(got) != 1 || got[0] != text {
		t.Fatalf("text not delivered whole (%d parts)", len(got))
	}
}
