package dispatch

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/health"
	"github.com/relay-project/relay/relay/store/sqlite"
)

// fakeAdapter records sends; it has a text limit and can be told to fail.
type fakeAdapter struct {
	limit int
	mu    sync.Mutex
	sent  []*relay.Outgoing
	fail  error
	busy  int // sends in flight now
	peak  int // most sends in flight at once
	delay time.Duration
	gate  chan struct{} // when set, each send waits for it to close (ignoring ctx, like a slow upstream)
}

func (f *fakeAdapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	f.mu.Lock()
	f.busy++
	f.peak = max(f.peak, f.busy)
	fail := f.fail
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.busy--; f.mu.Unlock() }()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.gate != nil {
		<-f.gate
	}
	if fail != nil {
		return relay.Sent{}, fail
	}
	f.mu.Lock()
	f.sent = append(f.sent, out)
	f.mu.Unlock()
	return relay.Sent{UpstreamID: fmt.Sprint(len(f.sent))}, nil
}
func (f *fakeAdapter) Probe(context.Context) error { return relay.ErrNoProbe }
func (f *fakeAdapter) Close() error                { return nil }
func (f *fakeAdapter) TextLimit() int              { return f.limit }

func newDispatcher(t *testing.T, chans map[string]*fakeAdapter, concurrency int) (*Dispatcher, func()) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rt := &Runtime{Channels: map[string]*Channel{}, Directory: &relay.Directory{Contacts: map[string]*relay.Contact{}}}
	var hc []health.Channel
	var route []string
	addrs := map[string]string{}
	for name, a := range chans {
		rt.Channels[name] = NewChannel(name, "fake", a, concurrency, 0)
		hc = append(hc, health.Channel{Name: name, Probe: a.Probe})
		route = append(route, name)
		addrs[name] = "addr-" + name
	}
	rt.Directory.Contacts["owner"] = &relay.Contact{Name: "owner", Route: route, Addresses: addrs}
	mon := health.New(health.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	mon.Start(ctx, hc)
	d := New(st, mon, rt, Options{PollInterval: 10 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	return d, func() { cancel(); <-done; mon.Stop(); st.Close() }
}

func waitDelivered(t *testing.T, d *Dispatcher, id string) *relay.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := d.store.Message(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Status() == "delivered" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: %s", id, m.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLongTextSplitToChannelLimit: a text over the channel's limit is
// sent as parts in order, each within the limit with its (i/n) marker,
// each with its own stable key.
func TestLongTextSplitToChannelLimit(t *testing.T) {
	kakao := &fakeAdapter{limit: 200}
	d, stop := newDispatcher(t, map[string]*fakeAdapter{"kakao": kakao}, 4)
	defer stop()
	text := strings.Repeat("배송이 시작되었습니다. ", 40) // ~520 runes
	m, _, err := d.Submit(context.Background(), Request{To: []string{"owner"}, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, d, m.ID)
	kakao.mu.Lock()
	defer kakao.mu.Unlock()
	if len(kakao.sent) < 3 {
		t.Fatalf("%d parts, want at least 3", len(kakao.sent))
	}
	keys := map[string]bool{}
	for i, out := range kakao.sent {
		if n := len([]rune(out.Text)); n > 200 {
			t.Errorf("part %d: %d runes", i+1, n)
		}
		if !strings.HasSuffix(out.Text, fmt.Sprintf(" (%d/%d)", i+1, len(kakao.sent))) || out.Part != i+1 || out.Parts != len(kakao.sent) {
			t.Errorf("part %d: %q part=%d/%d", i+1, out.Text, out.Part, out.Parts)
		}
		keys[out.Key] = true
	}
	if len(keys) != len(kakao.sent) {
		t.Error("parts share an idempotency key")
	}
}

// TestChannelConcurrencyCap: no more sends in flight on a channel than its
// concurrency.
func TestChannelConcurrencyCap(t *testing.T) {
	slow := &fakeAdapter{delay: 20 * time.Millisecond}
	d, stop := newDispatcher(t, map[string]*fakeAdapter{"slow": slow}, 2)
	defer stop()
	var ids []string
	for i := 0; i < 12; i++ {
		m, _, err := d.Submit(context.Background(), Request{To: []string{"owner"}, Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	for _, id := range ids {
		waitDelivered(t, d, id)
	}
	slow.mu.Lock()
	defer slow.mu.Unlock()
	if slow.peak > 2 || slow.peak < 1 {
		t.Fatalf("peak concurrency %d, want ≤ 2", slow.peak)
	}
}

// TestBackoffBounds: retry_min·2^round, capped at retry_max, jittered
// within [d/2, d].
func TestBackoffBounds(t *testing.T) {
	d := &Dispatcher{opt: Options{RetryMin: time.Second, RetryMax: 8 * time.Second}}
	for round, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second} {
		for i := 0; i < 50; i++ {
			got := d.backoff(round)
			if got < want/2 || got > want {
				t.Fatalf("round %d: backoff %v outside [%v, %v]", round, got, want/2, want)
			}
		}
	}
}

// A delivery still waiting for the channel's concurrency slot when the
// shutdown timeout cuts sends was never sent; after a restart it must be
// sent, not failed as "may have arrived".
func TestShutdownWhileWaitingForSlotIsNoAttempt(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	slow := &fakeAdapter{gate: make(chan struct{})}
	rt := &Runtime{Channels: map[string]*Channel{"only": NewChannel("only", "fake", slow, 1, 0)},
		Directory: &relay.Directory{Contacts: map[string]*relay.Contact{
			"owner": {Name: "owner", Route: []string{"only"}, Addresses: map[string]string{"only": "a"}}}}}
	mon := health.New(health.Options{})
	mon.Start(context.Background(), []health.Channel{{Name: "only", Probe: slow.Probe}})
	defer mon.Stop()
	opt := Options{PollInterval: 5 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond}
	d := New(st, mon, rt, opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var ids []string
	for _, text := range []string{"first", "second"} {
		m, _, err := d.Submit(context.Background(), Request{To: []string{"owner"}, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	// Wait until both are claimed: one is sending, the other waits for the
	// channel's only slot.
	waitUntil := time.Now().Add(10 * time.Second)
	for {
		a, _ := st.Message(context.Background(), ids[0])
		b, _ := st.Message(context.Background(), ids[1])
		// Either one holds the channel's only slot (the workers race for
		// it); the other is claimed and waits.
		if a != nil && b != nil && len(a.Deliveries[0].Attempts)+len(b.Deliveries[0].Attempts) >= 1 &&
			a.Deliveries[0].State == relay.StateSending && b.Deliveries[0].State == relay.StateSending {
			break
		}
		if time.Now().After(waitUntil) {
			t.Fatal("the two deliveries never reached sending / waiting for the slot")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	// The shutdown timeout (100ms) cuts the wait for the slot; then the
	// slow upstream answers the first send.
	time.Sleep(300 * time.Millisecond)
	close(slow.gate)
	<-done

	// Restart.
	d2 := New(st, mon, rt, opt)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { d2.Run(ctx2); close(done2) }()
	defer func() { cancel2(); <-done2 }()
	deadline := time.Now().Add(3 * time.Second)
	for _, id := range ids {
		for {
			m, err := st.Message(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if s := m.Status(); s == "delivered" {
				break
			} else if s == "failed" {
				t.Fatalf("message %q failed after restart though it was never sent: %s; attempts: %+v",
					m.Text, m.Deliveries[0].LastError, m.Deliveries[0].Attempts)
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %s", m.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestCancelStopsThePass: cancelling a message while its first channel
// hangs cuts the send short and does not fail over: nothing reaches the
// backup, and the message stays cancelled.
func TestCancelStopsThePass(t *testing.T) {
	hang := &fakeAdapter{fail: relay.Errorf(relay.KindAmbiguous, "no answer"), delay: 300 * time.Millisecond}
	backup := &fakeAdapter{}
	d, stop := newDispatcher(t, map[string]*fakeAdapter{"a-primary": hang, "b-backup": backup}, 4)
	defer stop()
	rt := d.Runtime()
	rt.Directory.Contacts["owner"].Route = []string{"a-primary", "b-backup"}
	m, _, err := d.Submit(context.Background(), Request{To: []string{"owner"}, Text: "never mind"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil := time.Now().Add(10 * time.Second)
	for {
		got, _ := d.store.Message(context.Background(), m.ID)
		if len(got.Deliveries[0].Attempts) == 1 {
			break
		}
		if time.Now().After(waitUntil) {
			t.Fatal("the first send never started")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := d.Cancel(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // past the hanging send
	backup.mu.Lock()
	n := len(backup.sent)
	backup.mu.Unlock()
	if n != 0 {
		t.Fatalf("a cancelled message failed over to the backup")
	}
	got, _ := d.store.Message(context.Background(), m.ID)
	if got.Status() != "cancelled" {
		t.Fatalf("status %s", got.Status())
	}
}
