package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/store/storetest"
)

var t0 = storetest.T0

// submitN stores n messages of one delivery each, due at t0.
func submitN(t *testing.T, s *Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		m := &relay.Message{ID: fmt.Sprintf("01M%06d", i), Text: "hi", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
			Deliveries: []*relay.Delivery{{ID: fmt.Sprintf("01D%06d", i), Contact: "owner", NextAt: t0,
				ExpiresAt: t0.Add(time.Hour), Route: []relay.Hop{{Channel: "telegram", Address: "1"}}}}}
		if _, _, err := s.Submit(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ids[i] = m.Deliveries[0].ID
	}
	return ids
}

func holder(t *testing.T, s *Store, deliveryID string) (state, by string) {
	t.Helper()
	var who *string
	if err := s.pool.QueryRow(context.Background(), `SELECT state, claimed_by FROM deliveries WHERE id = $1`,
		deliveryID).Scan(&state, &who); err != nil {
		t.Fatal(err)
	}
	if who != nil {
		by = *who
	}
	return state, by
}

// TestInstancesClaimDisjoint: two instances claiming from one database at
// the same time never get the same delivery, and each claim is stamped
// with the instance that holds it.
func TestInstancesClaimDisjoint(t *testing.T) {
	dsn := newDatabase(t)
	a := open(t, dsn, Options{Instance: "a"})
	b := open(t, dsn, Options{Instance: "b"})
	want := submitN(t, a, 400)

	var mu sync.Mutex
	got := map[string]string{} // delivery -> instance
	var dup atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := s.Claim(context.Background(), t0, 5)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if _, seen := got[d.ID]; seen {
						dup.Add(1)
					}
					got[d.ID] = s.Instance()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if dup.Load() > 0 {
		t.Fatalf("%d deliveries were claimed twice", dup.Load())
	}
	if len(got) != len(want) {
		t.Fatalf("claimed %d deliveries, want %d", len(got), len(want))
	}
	per := map[string]int{}
	for id, inst := range got {
		per[inst]++
		if st, by := holder(t, a, id); st != "sending" || by != inst {
			t.Fatalf("delivery %s is %s held by %q, want sending held by %q", id, st, by, inst)
		}
	}
	t.Logf("claims per instance: %v", per)
}

// TestRecoverRespectsLiveLease: instance B starting does not take A's
// claim while A's lease runs, a new attempt renews the lease, and once the
// lease has passed B requeues the delivery with its cut attempt recorded as
// ambiguous. A, late, cannot settle the delivery it lost.
func TestRecoverRespectsLiveLease(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	a := open(t, dsn, Options{Instance: "a", Lease: 5 * time.Minute})
	b := open(t, dsn, Options{Instance: "b", Lease: 5 * time.Minute})
	id := submitN(t, a, 1)[0]
	if ds, err := a.Claim(ctx, t0, 10); err != nil || len(ds) != 1 {
		t.Fatalf("A claims: %v, %v", ds, err)
	}
	first, err := a.StartAttempt(ctx, relay.Attempt{DeliveryID: id, Channel: "telegram", At: t0})
	if err != nil {
		t.Fatal(err)
	}

	recoverAt := func(s *Store, at time.Time, want int) {
		t.Helper()
		n, err := s.Recover(ctx, at)
		if err != nil || n != want {
			t.Fatalf("%s.Recover(t0+%v) = %d, %v; want %d", s.Instance(), at.Sub(t0), n, err, want)
		}
	}
	recoverAt(b, t0.Add(time.Minute), 0)
	if st, by := holder(t, a, id); st != "sending" || by != "a" {
		t.Fatalf("after B's start the delivery is %s held by %q, want still A's", st, by)
	}
	// A fails over to a second channel at t0+4m: the lease now runs to t0+9m.
	second, err := a.StartAttempt(ctx, relay.Attempt{DeliveryID: id, Channel: "email", At: t0.Add(4 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EndAttempt(ctx, relay.Attempt{ID: first, Outcome: relay.OutcomeTemporary, Error: "503"}); err != nil {
		t.Fatal(err)
	}
	recoverAt(b, t0.Add(6*time.Minute), 0)
	if d := deliveryOf(t, b, id); d.State != relay.StateSending || d.Attempts[1].Outcome != "" {
		t.Fatalf("a renewed lease was taken: %+v", d)
	}

	recoverAt(b, t0.Add(9*time.Minute), 1)
	d := deliveryOf(t, b, id)
	if d.State != relay.StateQueued || !d.NextAt.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("after the lease the delivery is %s due %v, want queued due at t0+9m", d.State, d.NextAt)
	}
	if d.Attempts[0].Outcome != relay.OutcomeTemporary || d.Attempts[1].ID != second ||
		d.Attempts[1].Outcome != relay.OutcomeAmbiguous {
		t.Fatalf("attempts after takeover = %+v; want the finished one kept, the cut one ambiguous", d.Attempts)
	}
	if ds, err := b.Claim(ctx, t0.Add(9*time.Minute), 10); err != nil || len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("B claims the requeued delivery: %v, %v", ds, err)
	}

	// A wakes up and settles: its outcome is kept as history, B's claim stays.
	err = a.Settle(ctx, relay.Settlement{DeliveryID: id, State: relay.StateDelivered, Channel: "email",
		At: t0.Add(10 * time.Minute), Attempt: &relay.Attempt{ID: second, Outcome: relay.OutcomeDelivered}})
	if err != nil {
		t.Fatal(err)
	}
	if st, by := holder(t, a, id); st != "sending" || by != "b" {
		t.Fatalf("A's late Settle changed B's delivery to %s held by %q", st, by)
	}
	if got := deliveryOf(t, b, id).Attempts[1].Outcome; got != relay.OutcomeDelivered {
		t.Fatalf("A's late attempt outcome = %q, want it recorded", got)
	}
}

// TestRecoverOwnClaims: an instance restarted under the same name requeues
// what its previous run left sending at once, not after the lease.
func TestRecoverOwnClaims(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	first := open(t, dsn, Options{Instance: "host-1"})
	ids := submitN(t, first, 2)
	if _, err := first.Claim(ctx, t0, 10); err != nil {
		t.Fatal(err)
	}
	first.Close()
	other := open(t, dsn, Options{Instance: "host-2"})
	if n, err := other.Recover(ctx, t0.Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("another instance's Recover inside the lease = %d, %v; want 0", n, err)
	}
	again := open(t, dsn, Options{Instance: "host-1"})
	if n, err := again.Recover(ctx, t0.Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("the restarted instance's Recover = %d, %v; want its 2 deliveries", n, err)
	}
	if st, _ := holder(t, again, ids[0]); st != "queued" {
		t.Fatalf("delivery is %s, want queued", st)
	}
}

// TestSweepRequeuesDeadInstance: an instance that stays up requeues, on its
// own, the claims of an instance that died, once their lease has passed.
func TestSweepRequeuesDeadInstance(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	dead := open(t, dsn, Options{Instance: "dead", Lease: time.Minute})
	id := submitN(t, dead, 1)[0]
	if _, err := dead.Claim(ctx, t0, 10); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	var clock atomic.Int64
	clock.Store(t0.Add(30 * time.Second).UnixNano())
	sweeps := make(chan int, 100)
	live := open(t, dsn, Options{Instance: "live", Lease: time.Minute, Sweep: time.Millisecond,
		Now: func() time.Time { return time.Unix(0, clock.Load()) },
		swept: func(n int) {
			select { // never block the sweep (Close waits for it)
			case sweeps <- n:
			default:
			}
		}})
	next := func() int {
		t.Helper()
		select {
		case n := <-sweeps:
			return n
		case <-time.After(5 * time.Second):
			t.Fatal("no sweep within 5s")
			return 0
		}
	}
	for range 3 {
		if n := next(); n != 0 {
			t.Fatalf("a sweep inside the lease requeued %d", n)
		}
	}
	if st, by := holder(t, live, id); st != "sending" || by != "dead" {
		t.Fatalf("swept inside the lease: %s held by %q", st, by)
	}
	clock.Store(t0.Add(61 * time.Second).UnixNano())
	for next() == 0 { // a sweep may have read the old clock
	}
	if st, _ := holder(t, live, id); st != "queued" {
		t.Fatalf("after the sweep past the lease the delivery is %s, want queued", st)
	}
}

func deliveryOf(t *testing.T, s *Store, deliveryID string) *relay.Delivery {
	t.Helper()
	var msgID string
	if err := s.pool.QueryRow(context.Background(), `SELECT message_id FROM deliveries WHERE id = $1`,
		deliveryID).Scan(&msgID); err != nil {
		t.Fatal(err)
	}
	m, err := s.Message(context.Background(), msgID)
	if err != nil {
		t.Fatal(err)
	}
	return m.Deliveries[0]
}
