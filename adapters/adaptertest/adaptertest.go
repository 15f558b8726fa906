// Package adaptertest is the conformance suite every adapter passes. Each
// adapter's test builds a Harness around a fake of its upstream on loopback.
package adaptertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// Mode is how the fake upstream behaves for one sub-test.
type Mode int

// Upstream behaviours the harness must be able to produce.
const (
	// Up accepts sends and probes.
	Up Mode = iota
	// Failing answers with the upstream's documented server error (5xx).
	Failing
	// Refusing refuses connections (the fake's listener is closed).
	Refusing
	// Hanging accepts the connection but never answers.
	Hanging
)

// Harness builds an adapter against a fake upstream in the given mode.
type Harness struct {
	// New returns an adapter whose upstream behaves as mode says; the fake
	// is cleaned up with t.Cleanup.
	New func(t *testing.T, mode Mode) relay.Adapter
	// Address is a valid recipient address for the fake.
	Address string
	// Delivered reports how many sends the fake accepted so far for the
	// adapter most recently built (nil if the fake cannot tell).
	Delivered func() int
	// NoProbe is true for adapters without a cheap probe (Probe returns
	// relay.ErrNoProbe).
	NoProbe bool
}

func out(addr string) *relay.Outgoing {
	return &relay.Outgoing{
		MessageID: "01TESTMESSAGE", DeliveryID: "01TESTDELIVERY", Contact: "owner",
		Address: addr, Text: "conformance: 안녕하세요", Part: 1, Parts: 1,
		CreatedAt: time.Now(), Key: "01TESTDELIVERY/chan/1",
	}
}

// Run checks the adapter contract: a send to a working upstream succeeds,
// a failing or unreachable upstream gives a temporary error, a hanging one
// returns by the context's deadline with a temporary or ambiguous error,
// probes tell up from down, and Close may be called twice.
func Run(t *testing.T, h Harness) {
	t.Run("send_ok", func(t *testing.T) {
		a := h.New(t, Up)
		defer a.Close()
		before := 0
		if h.Delivered != nil {
			before = h.Delivered()
		}
		if _, err := a.Send(context.Background(), out(h.Address)); err != nil {
			t.Fatalf("Send to a working upstream: %v", err)
		}
		if h.Delivered != nil && h.Delivered() != before+1 {
			t.Fatalf("fake saw %d sends, want %d", h.Delivered(), before+1)
		}
	})
	t.Run("probe_up", func(t *testing.T) {
		a := h.New(t, Up)
		defer a.Close()
		err := a.Probe(context.Background())
		if h.NoProbe {
			if !errors.Is(err, relay.ErrNoProbe) {
				t.Fatalf("Probe = %v, want ErrNoProbe", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Probe of a working upstream: %v", err)
		}
	})
	for _, m := range []struct {
		name string
		mode Mode
	}{{"failing", Failing}, {"refusing", Refusing}} {
		t.Run("send_"+m.name, func(t *testing.T) {
			a := h.New(t, m.mode)
			defer a.Close()
			_, err := a.Send(context.Background(), out(h.Address))
			if k := relay.KindOf(err); k != relay.KindTemporary && k != relay.KindAmbiguous {
				t.Fatalf("Send to a %s upstream: kind %v (%v), want temporary or ambiguous", m.name, k, err)
			}
			if !h.NoProbe {
				if err := a.Probe(context.Background()); err == nil {
					t.Fatalf("Probe of a %s upstream succeeded", m.name)
				}
			}
		})
	}
	t.Run("send_hanging", func(t *testing.T) {
		a := h.New(t, Hanging)
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := a.Send(ctx, out(h.Address))
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Send ignored its context: returned after %v", took)
		}
		if k := relay.KindOf(err); k != relay.KindTemporary && k != relay.KindAmbiguous {
			t.Fatalf("Send to a hanging upstream: kind %v (%v), want temporary or ambiguous", k, err)
		}
	})
	t.Run("close_twice", func(t *testing.T) {
		a := h.New(t, Up)
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}
