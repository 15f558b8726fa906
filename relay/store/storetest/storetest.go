// Package storetest is the conformance suite for relay.Store: every
// backend runs Run, so each one keeps the contract documented on the
// interface. Times are explicit (the store takes them from its callers) and
// whole milliseconds, the precision every backend keeps.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// T0 is the suite's fixed "now".
var T0 = time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)

// Run runs the suite. open must return a new, empty store for each call;
// Run closes it when the test ends.
func Run(t *testing.T, open func(t *testing.T) relay.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"SubmitReadback", testSubmitReadback},
		{"SubmitIdempotency", testSubmitIdempotency},
		{"SubmitIdempotencyConcurrent", testSubmitIdempotencyConcurrent},
		{"PruneIdempotency", testPruneIdempotency},
		{"SubmitConcurrent", testSubmitConcurrent},
		{"Messages", testMessages},
		{"MessagesStatusFilter", testMessagesStatusFilter},
		{"Claim", testClaim},
		{"ClaimConcurrent", testClaimConcurrent},
		{"Attempts", testAttempts},
		{"SettleRequeue", testSettleRequeue},
		{"SettleFinal", testSettleFinal},
		{"SettleCancelledWhileSending", testSettleCancelledWhileSending},
		{"Recover", testRecover},
		{"Cancel", testCancel},
		{"Retry", testRetry},
		{"Wake", testWake},
		{"Receipt", testReceipt},
		{"Counts", testCounts},
		{"ChannelState", testChannelState},
		{"PingClose", testPingClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, s: open(t), ctx: context.Background()}
			t.Cleanup(func() {
				if !h.closed {
					if err := h.s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}
			})
			tc.fn(t, h)
		})
	}
}

// harness holds one store under test and builds fixtures for it.
type harness struct {
	t      *testing.T
	s      relay.Store
	ctx    context.Context
	seq    int
	closed bool
}

// id returns IDs that sort in creation order, as ULIDs do.
func (h *harness) id(prefix string) string {
	h.seq++
	return fmt.Sprintf("%s%08d", prefix, h.seq)
}

// msg builds a message created at at with one delivery per contact,
// expiring a day later. The deliveries fall due a millisecond apart, the
// last at at, so claims take them in a known order.
func (h *harness) msg(at time.Time, contacts ...string) *relay.Message {
	m := &relay.Message{
		ID: h.id("01M"), Kind: relay.KindMessage, Text: "hello", CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour),
	}
	for _, c := range contacts {
		m.Deliveries = append(m.Deliveries, &relay.Delivery{
			ID: h.id("01D"), Contact: c, State: relay.StateQueued,
			Route:     []relay.Hop{{Channel: "telegram", Address: "111"}, {Channel: "email", Address: c + "@example.org"}},
			NextAt:    at.Add(-time.Duration(len(contacts)-1-len(m.Deliveries)) * time.Millisecond),
			ExpiresAt: at.Add(24 * time.Hour),
		})
	}
	return m
}

// submit stores m and fails the test unless it was created.
func (h *harness) submit(m *relay.Message) *relay.Message {
	h.t.Helper()
	got, created, err := h.s.Submit(h.ctx, m)
	if err != nil {
		h.t.Fatalf("Submit(%s): %v", m.ID, err)
	}
	if !created {
		h.t.Fatalf("Submit(%s): created = false for a new message", m.ID)
	}
	return got
}

func (h *harness) get(id string) *relay.Message {
	h.t.Helper()
	m, err := h.s.Message(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Message(%s): %v", id, err)
	}
	return m
}

// delivery reads one delivery back through Message.
func (h *harness) delivery(messageID, deliveryID string) *relay.Delivery {
	h.t.Helper()
	for _, d := range h.get(messageID).Deliveries {
		if d.ID == deliveryID {
			return d
		}
	}
	h.t.Fatalf("message %s has no delivery %s", messageID, deliveryID)
	return nil
}

func (h *harness) claim(now time.Time, limit int) []*relay.Delivery {
	h.t.Helper()
	ds, err := h.s.Claim(h.ctx, now, limit)
	if err != nil {
		h.t.Fatalf("Claim: %v", err)
	}
	return ds
}

// claimOne claims and expects exactly the delivery id.
func (h *harness) claimOne(now time.Time, id string) *relay.Delivery {
	h.t.Helper()
	ds := h.claim(now, 10)
	if len(ds) != 1 || ds[0].ID != id {
		h.t.Fatalf("Claim(%v) = %v, want just %s", now, ids(ds), id)
	}
	return ds[0]
}

func (h *harness) start(deliveryID, channel string, at time.Time) int64 {
	h.t.Helper()
	id, err := h.s.StartAttempt(h.ctx, relay.Attempt{DeliveryID: deliveryID, Channel: channel, At: at})
	if err != nil {
		h.t.Fatalf("StartAttempt: %v", err)
	}
	return id
}

func (h *harness) settle(s relay.Settlement) {
	h.t.Helper()
	if err := h.s.Settle(h.ctx, s); err != nil {
		h.t.Fatalf("Settle(%s): %v", s.DeliveryID, err)
	}
}

func (h *harness) must(err error, what string) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

func ids(ds []*relay.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func messageIDs(ms []*relay.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func testChannelState(t *testing.T, h *harness) {
	a, b := h.s.ChannelState("kakao"), h.s.ChannelState("line")
	if _, ok, err := a.Get(h.ctx, "token"); err != nil || ok {
		t.Fatalf("Get of a missing key = ok %v, err %v; want false, nil", ok, err)
	}
	h.must(a.Put(h.ctx, "token", []byte("one")), "Put")
	h.must(a.Put(h.ctx, "token", []byte("two\x00bytes")), "Put again")
	h.must(b.Put(h.ctx, "token", []byte("other channel")), "Put on another channel")
	v, ok, err := a.Get(h.ctx, "token")
	if err != nil || !ok || string(v) != "two\x00bytes" {
		t.Errorf("Get = %q, %v, %v; want the overwritten value", v, ok, err)
	}
	v, ok, err = b.Get(h.ctx, "token")
	if err != nil || !ok || string(v) != "other channel" {
		t.Errorf("Get on the other channel = %q, %v, %v; keys must be scoped per channel", v, ok, err)
	}
	if _, ok, _ := h.s.ChannelState("telegram").Get(h.ctx, "token"); ok {
		t.Error("a third channel sees another channel's key")
	}
}

func testPingClose(t *testing.T, h *harness) {
	h.must(h.s.Ping(h.ctx), "Ping")
	// Writes queued right before Close must be committed by it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done []string
	for i := 0; i < 8; i++ {
		m := h.msg(T0, "owner")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := h.s.Submit(h.ctx, m); err == nil {
				mu.Lock()
				done = append(done, m.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(done) != 8 {
		t.Fatalf("%d of 8 concurrent submits succeeded", len(done))
	}
	h.closed = true
	h.must(h.s.Close(), "Close")
	if err := h.s.Ping(h.ctx); err == nil {
		t.Error("Ping after Close = nil, want an error")
	}
	if _, _, err := h.s.Submit(h.ctx, h.msg(T0, "owner")); err == nil {
		t.Error("Submit after Close = nil error, want one")
	}
}
