package storetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

func testClaim(t *testing.T, h *harness) {
	late := h.msg(T0.Add(-time.Minute), "owner") // due at T0-1m
	early := h.msg(T0.Add(-time.Hour), "owner")  // due at T0-1h: claimed first
	notDue := h.msg(T0.Add(time.Second), "owner")
	gone := h.msg(T0.Add(-2*time.Hour), "owner")
	for _, m := range []*relay.Message{late, early, notDue, gone} {
		h.submit(m)
	}
	h.must(h.s.Cancel(h.ctx, gone.ID), "Cancel")

	got := h.claim(T0, 1)
	sameStrings(t, "first claim (limit 1)", ids(got), []string{early.Deliveries[0].ID})
	got = h.claim(T0, 10)
	sameStrings(t, "second claim", ids(got), []string{late.Deliveries[0].ID})
	d := got[0]
	if d.State != relay.StateSending || d.MessageID != late.ID || d.Text != "hello" || d.Kind != relay.KindMessage ||
		d.Contact != "owner" || len(d.Route) != 2 {
		t.Errorf("claimed delivery = %+v, want it sending and self-contained", d)
	}
	sameTime(t, "claimed CreatedAt", d.CreatedAt, late.CreatedAt)
	if st := h.delivery(late.ID, d.ID).State; st != relay.StateSending {
		t.Errorf("claimed delivery reads back as %s, want sending", st)
	}
	if got := h.get(late.ID).Status(); got != relay.MessageStatus(relay.StateSending) {
		t.Errorf("message status = %s, want sending", got)
	}
	if got := h.claim(T0, 10); len(got) != 0 {
		t.Errorf("claim again at T0 = %v; sending, cancelled and future deliveries must not be claimed", ids(got))
	}
	h.claimOne(T0.Add(time.Second), notDue.Deliveries[0].ID) // due exactly at now

	// A requeued delivery comes back with its attempts.
	aid := h.start(d.ID, "telegram", T0)
	h.settle(relay.Settlement{DeliveryID: d.ID, State: relay.StateQueued, Channel: "telegram", Round: 0,
		NextAt: T0.Add(time.Minute), At: T0,
		Attempt: &relay.Attempt{ID: aid, Outcome: relay.OutcomeTemporary, Error: "503"}})
	again := h.claimOne(T0.Add(time.Minute), d.ID)
	if len(again.Attempts) != 1 || again.Attempts[0].ID != aid || again.Attempts[0].Outcome != relay.OutcomeTemporary {
		t.Errorf("claimed delivery attempts = %+v, want the finished attempt %d", again.Attempts, aid)
	}
}

func testClaimConcurrent(t *testing.T, h *harness) {
	const n = 120
	want := map[string]bool{}
	for i := 0; i < n/3; i++ {
		m := h.submit(h.msg(T0.Add(-time.Duration(i)*time.Millisecond), "a", "b", "c"))
		for _, d := range m.Deliveries {
			want[d.ID] = true
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := h.s.Claim(h.ctx, T0, 7)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id, c := range seen {
		if c != 1 {
			t.Errorf("delivery %s was claimed %d times", id, c)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("claimed %d distinct deliveries, want %d", len(seen), len(want))
	}
}

func testAttempts(t *testing.T, h *harness) {
	m := h.submit(h.msg(T0, "owner"))
	d := h.claimOne(T0, m.Deliveries[0].ID)
	a1 := h.start(d.ID, "telegram", T0)
	a2 := h.start(d.ID, "email", T0.Add(time.Second))
	if a1 == 0 || a2 == 0 || a1 == a2 {
		t.Fatalf("attempt IDs %d and %d, want distinct non-zero", a1, a2)
	}
	got := h.delivery(m.ID, d.ID).Attempts
	if len(got) != 2 || got[0].ID != a1 || got[0].Outcome != "" || got[0].Channel != "telegram" || got[0].DeliveryID != d.ID {
		t.Fatalf("attempts after start = %+v, want two in flight, telegram first", got)
	}
	sameTime(t, "attempt At", got[1].At, T0.Add(time.Second))

	h.must(h.s.EndAttempt(h.ctx, relay.Attempt{ID: a1, Outcome: relay.OutcomeAmbiguous, Error: "timeout",
		UpstreamID: "up-1"}), "EndAttempt")
	got = h.delivery(m.ID, d.ID).Attempts
	if got[0].Outcome != relay.OutcomeAmbiguous || got[0].Error != "timeout" || got[0].UpstreamID != "up-1" {
		t.Errorf("ended attempt = %+v, want ambiguous/timeout/up-1", got[0])
	}
	if got[1].Outcome != "" {
		t.Errorf("EndAttempt touched the other attempt: %+v", got[1])
	}
	err := h.s.EndAttempt(h.ctx, relay.Attempt{ID: a2 + 1000, Outcome: relay.OutcomeDelivered})
	wantErr(t, "EndAttempt(unknown)", err, relay.ErrNotFound)
}

func testSettleRequeue(t *testing.T, h *harness) {
	m := h.submit(h.msg(T0, "owner"))
	d := h.claimOne(T0, m.Deliveries[0].ID)
	next := T0.Add(90 * time.Second)
	h.settle(relay.Settlement{DeliveryID: d.ID, State: relay.StateQueued, Channel: "email", Round: 2,
		NextAt: next, LastError: "all channels down", At: T0.Add(time.Second)})
	got := h.delivery(m.ID, d.ID)
	if got.State != relay.StateQueued || got.Round != 2 || got.LastError != "all channels down" || got.Channel != "email" {
		t.Errorf("requeued delivery = %+v", got)
	}
	sameTime(t, "NextAt", got.NextAt, next)
	sameTime(t, "UpdatedAt", got.UpdatedAt, T0.Add(time.Second))
	if ds := h.claim(next.Add(-time.Millisecond), 10); len(ds) != 0 {
		t.Errorf("claimed %v before NextAt", ids(ds))
	}
	if again := h.claimOne(next, d.ID); again.Round != 2 {
		t.Errorf("reclaimed Round = %d, want 2", again.Round)
	}
	err := h.s.Settle(h.ctx, relay.Settlement{DeliveryID: "01DNOPE", State: relay.StateFailed, At: T0})
	wantErr(t, "Settle(unknown)", err, relay.ErrNotFound)
}

func testSettleFinal(t *testing.T, h *harness) {
	m := h.submit(h.msg(T0, "owner", "alice"))
	ds := h.claim(T0, 10)
	if len(ds) != 2 {
		t.Fatalf("claimed %d, want 2", len(ds))
	}
	aid := h.start(ds[0].ID, "telegram", T0)
	h.settle(relay.Settlement{DeliveryID: ds[0].ID, State: relay.StateDelivered, Channel: "telegram", At: T0.Add(time.Second),
		Attempt: &relay.Attempt{ID: aid, Outcome: relay.OutcomeDelivered, UpstreamID: "tg-5"}})
	// An attempt without ID is recorded whole by Settle.
	h.settle(relay.Settlement{DeliveryID: ds[1].ID, State: relay.StateFailed, Channel: "email",
		LastError: "address rejected", At: T0.Add(time.Second),
		Attempt: &relay.Attempt{Channel: "email", At: T0, Outcome: relay.OutcomePermanent, Error: "550"}})

	got := h.get(m.ID)
	d0, d1 := got.Deliveries[0], got.Deliveries[1]
	if d0.State != relay.StateDelivered || d0.Channel != "telegram" || len(d0.Attempts) != 1 ||
		d0.Attempts[0].Outcome != relay.OutcomeDelivered || d0.Attempts[0].UpstreamID != "tg-5" {
		t.Errorf("delivered delivery = %+v", d0)
	}
	if d1.State != relay.StateFailed || d1.LastError != "address rejected" || len(d1.Attempts) != 1 ||
		d1.Attempts[0].Outcome != relay.OutcomePermanent || d1.Attempts[0].Channel != "email" || d1.Attempts[0].DeliveryID != d1.ID {
		t.Errorf("failed delivery = %+v", d1)
	}
	if got.Status() != relay.StatusPartial {
		t.Errorf("status = %s, want partial", got.Status())
	}
	if ds := h.claim(T0.Add(time.Hour), 10); len(ds) != 0 {
		t.Errorf("final deliveries were claimed: %v", ids(ds))
	}
}

func testSettleCancelledWhileSending(t *testing.T, h *harness) {
	m := h.submit(h.msg(T0, "owner"))
	d := h.claimOne(T0, m.Deliveries[0].ID)
	aid := h.start(d.ID, "telegram", T0)
	h.must(h.s.Cancel(h.ctx, m.ID), "Cancel")
	h.settle(relay.Settlement{DeliveryID: d.ID, State: relay.StateDelivered, Channel: "telegram", At: T0,
		Attempt: &relay.Attempt{ID: aid, Outcome: relay.OutcomeDelivered}})
	got := h.delivery(m.ID, d.ID)
	if got.State != relay.StateCancelled {
		t.Errorf("delivery cancelled while sending settled to %s, want cancelled", got.State)
	}
	if len(got.Attempts) != 1 || got.Attempts[0].Outcome != relay.OutcomeDelivered {
		t.Errorf("the attempt's outcome was not kept: %+v", got.Attempts)
	}
}

func testRecover(t *testing.T, h *harness) {
	m := h.submit(h.msg(T0, "owner", "alice"))
	ds := h.claim(T0, 10)
	done := h.start(ds[0].ID, "telegram", T0)
	h.must(h.s.EndAttempt(h.ctx, relay.Attempt{ID: done, Outcome: relay.OutcomeTemporary, Error: "503"}), "EndAttempt")
	cut := h.start(ds[0].ID, "email", T0)
	h.settle(relay.Settlement{DeliveryID: ds[1].ID, State: relay.StateDelivered, Channel: "telegram", At: T0})
	queued := h.submit(h.msg(T0.Add(time.Hour), "bob"))

	now := T0.Add(10 * time.Minute)
	n, err := h.s.Recover(h.ctx, now)
	h.must(err, "Recover")
	if n != 1 {
		t.Errorf("Recover = %d, want 1", n)
	}
	got := h.delivery(m.ID, ds[0].ID)
	if got.State != relay.StateQueued {
		t.Errorf("recovered delivery state = %s, want queued", got.State)
	}
	sameTime(t, "recovered NextAt", got.NextAt, now)
	if len(got.Attempts) != 2 || got.Attempts[0].Outcome != relay.OutcomeTemporary ||
		got.Attempts[1].ID != cut || got.Attempts[1].Outcome != relay.OutcomeAmbiguous ||
		!strings.Contains(got.Attempts[1].Error, "interrupted") {
		t.Errorf("attempts after Recover = %+v; want the finished one kept and the cut one ambiguous, interrupted", got.Attempts)
	}
	if st := h.delivery(m.ID, ds[1].ID).State; st != relay.StateDelivered {
		t.Errorf("Recover changed a delivered delivery to %s", st)
	}
	if d := h.delivery(queued.ID, queued.Deliveries[0].ID); !d.NextAt.Equal(T0.Add(time.Hour)) {
		t.Errorf("Recover moved a queued delivery's NextAt to %v", d.NextAt)
	}
	h.claimOne(now, ds[0].ID)
}

func testCancel(t *testing.T, h *harness) {
	wantErr(t, "Cancel(unknown)", h.s.Cancel(h.ctx, "01MNOPE"), relay.ErrNotFound)
	m := h.submit(h.msg(T0, "a", "b", "c"))
	ds := h.claim(T0, 1) // a: sending
	h.claim(T0, 1)       // b: sending, then delivered
	h.settle(relay.Settlement{DeliveryID: m.Deliveries[1].ID, State: relay.StateDelivered, Channel: "telegram", At: T0})
	h.must(h.s.Cancel(h.ctx, m.ID), "Cancel")
	got := h.get(m.ID)
	want := []relay.DeliveryState{relay.StateCancelled, relay.StateDelivered, relay.StateCancelled}
	for i, d := range got.Deliveries {
		if d.State != want[i] {
			t.Errorf("delivery %d after Cancel = %s, want %s", i, d.State, want[i])
		}
	}
	if ds[0].ID != m.Deliveries[0].ID {
		t.Fatalf("claim order: got %s first", ds[0].ID)
	}
	if n := len(h.claim(T0.Add(time.Hour), 10)); n != 0 {
		t.Errorf("claimed %d cancelled deliveries", n)
	}
}

func testRetry(t *testing.T, h *harness) {
	wantErr(t, "Retry(unknown)", h.s.Retry(h.ctx, "01MNOPE", T0, time.Hour), relay.ErrNotFound)
	m := h.submit(h.msg(T0, "failed", "expired", "delivered", "waiting"))
	ds := h.claim(T0, 3)
	settle := func(i int, st relay.DeliveryState) {
		h.settle(relay.Settlement{DeliveryID: ds[i].ID, State: st, Channel: "telegram", Round: 3, At: T0})
	}
	settle(0, relay.StateFailed)
	settle(1, relay.StateExpired)
	settle(2, relay.StateDelivered)
	wait := m.Deliveries[3]
	h.claimOne(T0, wait.ID)
	h.settle(relay.Settlement{DeliveryID: wait.ID, State: relay.StateQueued, Round: 1, NextAt: T0.Add(time.Hour), At: T0})

	now := T0.Add(48 * time.Hour)
	h.must(h.s.Retry(h.ctx, m.ID, now, 2*time.Hour), "Retry")
	got := h.get(m.ID)
	for _, i := range []int{0, 1} {
		d := got.Deliveries[i]
		if d.State != relay.StateQueued || d.Round != 0 {
			t.Errorf("retried %s delivery = %s round %d, want queued round 0", d.Contact, d.State, d.Round)
		}
		sameTime(t, d.Contact+" NextAt", d.NextAt, now)
		sameTime(t, d.Contact+" ExpiresAt", d.ExpiresAt, now.Add(2*time.Hour))
		sameTime(t, d.Contact+" RetriedAt", d.RetriedAt, now)
	}
	if d := got.Deliveries[2]; d.State != relay.StateDelivered {
		t.Errorf("Retry changed a delivered delivery to %s", d.State)
	}
	if d := got.Deliveries[3]; d.State != relay.StateQueued || d.Round != 1 || !d.NextAt.Equal(now) {
		t.Errorf("queued delivery after Retry = %s round %d next %v; want due now, round kept", d.State, d.Round, d.NextAt)
	}
	if n := len(h.claim(now, 10)); n != 3 {
		t.Errorf("claimed %d after Retry, want 3", n)
	}
}

func testWake(t *testing.T, h *harness) {
	later := h.submit(h.msg(T0.Add(time.Hour), "owner"))
	due := h.submit(h.msg(T0.Add(-time.Hour), "owner"))
	sending := h.submit(h.msg(T0.Add(-2*time.Hour), "owner"))
	h.claimOne(T0.Add(-2*time.Hour), sending.Deliveries[0].ID)
	h.must(h.s.Wake(h.ctx, T0), "Wake")
	sameTime(t, "woken NextAt", h.delivery(later.ID, later.Deliveries[0].ID).NextAt, T0)
	if d := h.delivery(sending.ID, sending.Deliveries[0].ID); d.State != relay.StateSending {
		t.Errorf("Wake changed a sending delivery to %s", d.State)
	}
	got := h.claim(T0, 10)
	// The one that was already due keeps its earlier place.
	sameStrings(t, "claim after Wake", ids(got), []string{due.Deliveries[0].ID, later.Deliveries[0].ID})
}

func testReceipt(t *testing.T, h *harness) {
	m := h.submit(h.msg(T0, "a", "b"))
	ds := h.claim(T0, 10)
	tg := h.start(ds[0].ID, "telegram", T0)
	line := h.start(ds[1].ID, "line", T0)
	h.must(h.s.EndAttempt(h.ctx, relay.Attempt{ID: tg, Outcome: relay.OutcomeDelivered, UpstreamID: "42"}), "EndAttempt")
	h.must(h.s.EndAttempt(h.ctx, relay.Attempt{ID: line, Outcome: relay.OutcomeDelivered, UpstreamID: "42"}), "EndAttempt")

	h.must(h.s.Receipt(h.ctx, "telegram", "42", relay.ReceiptDelivered, T0.Add(time.Second)), "Receipt delivered")
	h.must(h.s.Receipt(h.ctx, "telegram", "42", relay.ReceiptRead, T0.Add(time.Minute)), "Receipt read")
	h.must(h.s.Receipt(h.ctx, "telegram", "nope", relay.ReceiptRead, T0), "Receipt for an unknown id")
	h.must(h.s.Receipt(h.ctx, "sms", "42", relay.ReceiptRead, T0), "Receipt on another channel")

	got := h.get(m.ID)
	a := got.Deliveries[0].Attempts[0]
	sameTime(t, "DeliveredAt", a.DeliveredAt, T0.Add(time.Second))
	sameTime(t, "ReadAt", a.ReadAt, T0.Add(time.Minute))
	b := got.Deliveries[1].Attempts[0]
	if !b.DeliveredAt.IsZero() || !b.ReadAt.IsZero() {
		t.Errorf("a receipt for telegram landed on the line attempt with the same upstream id: %+v", b)
	}
}
