package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

func testSubmitReadback(t *testing.T, h *harness) {
	m := h.msg(T0, "owner", "alice")
	m.Kind, m.Subject, m.Text, m.Priority = relay.KindNotice, "Disk", "disk full\nline two", relay.PriorityHigh
	m.Submitter, m.IdempotencyKey, m.RequestHash, m.ConversationID = "ci", "key-1", "hash-1", "conv-7"
	m.ExpiresAt = T0.Add(2 * time.Hour)
	m.Deliveries[1].Pinned = true
	m.Deliveries[1].Route = []relay.Hop{{Channel: "line", Address: "U123"}}
	m.Deliveries[1].NextAt = T0.Add(time.Minute)
	h.submit(m)

	got := h.get(m.ID)
	if got.ID != m.ID || got.Kind != relay.KindNotice || got.Subject != "Disk" || got.Text != m.Text ||
		got.Priority != relay.PriorityHigh || got.Submitter != "ci" || got.IdempotencyKey != "key-1" ||
		got.RequestHash != "hash-1" || got.ConversationID != "conv-7" {
		t.Errorf("message read back = %+v, want the submitted fields", got)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, T0)
	sameTime(t, "ExpiresAt", got.ExpiresAt, T0.Add(2*time.Hour))
	if got.Status() != relay.MessageStatus(relay.StateQueued) {
		t.Errorf("status = %s, want queued", got.Status())
	}
	if len(got.Deliveries) != 2 {
		t.Fatalf("read back %d deliveries, want 2", len(got.Deliveries))
	}
	for i, d := range got.Deliveries {
		w := m.Deliveries[i]
		if d.ID != w.ID || d.MessageID != m.ID || d.Contact != w.Contact || d.Pinned != w.Pinned ||
			d.State != relay.StateQueued || d.Round != 0 || len(d.Attempts) != 0 {
			t.Errorf("delivery %d = %+v, want %+v in state queued without attempts", i, d, w)
		}
		if fmt.Sprint(d.Route) != fmt.Sprint(w.Route) {
			t.Errorf("delivery %d route = %v, want %v", i, d.Route, w.Route)
		}
		sameTime(t, "NextAt", d.NextAt, w.NextAt)
		sameTime(t, "delivery ExpiresAt", d.ExpiresAt, w.ExpiresAt)
		if d.Kind != relay.KindNotice || d.Subject != "Disk" || d.Text != m.Text || d.Priority != relay.PriorityHigh {
			t.Errorf("delivery %d lacks the message's kind/subject/text/priority: %+v", i, d)
		}
		sameTime(t, "delivery CreatedAt", d.CreatedAt, T0)
	}

	_, err := h.s.Message(h.ctx, "01MNOPE")
	wantErr(t, "Message(unknown)", err, relay.ErrNotFound)
}

func testSubmitIdempotency(t *testing.T, h *harness) {
	first := h.msg(T0, "owner")
	first.Submitter, first.IdempotencyKey, first.RequestHash = "ci", "k", "h1"
	h.submit(first)

	again := h.msg(T0.Add(time.Second), "owner")
	again.Submitter, again.IdempotencyKey, again.RequestHash = "ci", "k", "h1"
	got, created, err := h.s.Submit(h.ctx, again)
	h.must(err, "Submit with the same key and hash")
	if created || got == nil || got.ID != first.ID || len(got.Deliveries) != 1 || got.Deliveries[0].ID != first.Deliveries[0].ID {
		t.Errorf("same key and hash: created=%v message=%+v; want the first message, created=false", created, got)
	}
	if _, err := h.s.Message(h.ctx, again.ID); err == nil {
		t.Error("the duplicate submit stored its own message")
	}

	other := h.msg(T0.Add(2*time.Second), "owner")
	other.Submitter, other.IdempotencyKey, other.RequestHash = "ci", "k", "h2"
	_, _, err = h.s.Submit(h.ctx, other)
	wantErr(t, "same key, other hash", err, relay.ErrIdempotencyReuse)
	if _, err := h.s.Message(h.ctx, other.ID); err == nil {
		t.Error("the rejected submit stored its message")
	}

	// Keys are per submitter.
	elsewhere := h.msg(T0.Add(3*time.Second), "owner")
	elsewhere.Submitter, elsewhere.IdempotencyKey, elsewhere.RequestHash = "cron", "k", "h9"
	h.submit(elsewhere)

	// No key: every submit is new, even with equal hashes.
	for i := 0; i < 2; i++ {
		m := h.msg(T0, "owner")
		m.Submitter, m.RequestHash = "ci", "h1"
		h.submit(m)
	}
	all, err := h.s.Messages(h.ctx, relay.MessageFilter{Limit: 100})
	h.must(err, "Messages")
	if len(all) != 4 {
		t.Errorf("%d messages stored, want 4: %v", len(all), messageIDs(all))
	}
}

func testSubmitIdempotencyConcurrent(t *testing.T, h *harness) {
	const n = 16
	msgs := make([]*relay.Message, n)
	for i := range msgs {
		msgs[i] = h.msg(T0, "owner")
		msgs[i].Submitter, msgs[i].IdempotencyKey, msgs[i].RequestHash = "ci", "same", "h"
	}
	var wg sync.WaitGroup
	created := make([]bool, n)
	got := make([]string, n)
	errs := make([]error, n)
	for i := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, c, err := h.s.Submit(h.ctx, msgs[i])
			created[i], errs[i] = c, err
			if m != nil {
				got[i] = m.ID
			}
		}()
	}
	wg.Wait()
	winners := 0
	for i := range msgs {
		h.must(errs[i], "concurrent Submit")
		if created[i] {
			winners++
		}
		if got[i] != got[0] {
			t.Errorf("submit %d returned %s, submit 0 returned %s: one key must mean one message", i, got[i], got[0])
		}
	}
	if winners != 1 {
		t.Errorf("%d submits created a message, want exactly 1", winners)
	}
}

func testPruneIdempotency(t *testing.T, h *harness) {
	old := h.msg(T0, "owner")
	old.Submitter, old.IdempotencyKey, old.RequestHash = "ci", "old", "h"
	h.submit(old)
	young := h.msg(T0.Add(time.Hour), "owner")
	young.Submitter, young.IdempotencyKey, young.RequestHash = "ci", "young", "h"
	h.submit(young)

	h.must(h.s.PruneIdempotency(h.ctx, T0.Add(time.Minute)), "PruneIdempotency")

	reuse := h.msg(T0.Add(2*time.Hour), "owner")
	reuse.Submitter, reuse.IdempotencyKey, reuse.RequestHash = "ci", "old", "other"
	h.submit(reuse) // the pruned key is free again, whatever the hash
	if _, err := h.s.Message(h.ctx, old.ID); err != nil {
		t.Errorf("pruning a key removed its message: %v", err)
	}
	dup := h.msg(T0.Add(2*time.Hour), "owner")
	dup.Submitter, dup.IdempotencyKey, dup.RequestHash = "ci", "young", "h"
	got, created, err := h.s.Submit(h.ctx, dup)
	h.must(err, "Submit with a kept key")
	if created || got.ID != young.ID {
		t.Errorf("a key younger than the cut-off was pruned: created=%v id=%s", created, got.ID)
	}
}

func testSubmitConcurrent(t *testing.T, h *harness) {
	const workers, each = 16, 25
	msgs := make([][]*relay.Message, workers)
	for w := range msgs {
		for i := 0; i < each; i++ {
			msgs[w] = append(msgs[w], h.msg(T0, "owner", "alice"))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range msgs[w] {
				if _, created, err := h.s.Submit(h.ctx, m); err != nil || !created {
					errs <- fmt.Errorf("Submit(%s) = created %v, %v", m.ID, created, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range msgs {
		for _, m := range msgs[w] {
			if got := h.get(m.ID); len(got.Deliveries) != 2 {
				t.Fatalf("message %s read back with %d deliveries, want 2", m.ID, len(got.Deliveries))
			}
		}
	}
	counts, err := h.s.Counts(h.ctx)
	h.must(err, "Counts")
	if counts[relay.StateQueued] != workers*each*2 {
		t.Errorf("Counts[queued] = %d, want %d", counts[relay.StateQueued], workers*each*2)
	}
}

func testMessages(t *testing.T, h *harness) {
	var all []string // oldest first
	for i := 0; i < 7; i++ {
		m := h.msg(T0.Add(time.Duration(i)*time.Second), "owner")
		if i%2 == 1 {
			m.Submitter = "ci"
		}
		h.submit(m)
		all = append(all, m.ID)
	}
	newest := func(ids []string) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[len(ids)-1-i] = id
		}
		return out
	}
	page, err := h.s.Messages(h.ctx, relay.MessageFilter{Limit: 3})
	h.must(err, "Messages")
	sameStrings(t, "first page", messageIDs(page), newest(all)[:3])
	if len(page) > 0 && (len(page[0].Deliveries) != 1 || page[0].Deliveries[0].Contact != "owner") {
		t.Errorf("Messages did not include deliveries: %+v", page[0])
	}
	page, err = h.s.Messages(h.ctx, relay.MessageFilter{Limit: 3, Before: page[2].ID})
	h.must(err, "Messages before")
	sameStrings(t, "second page", messageIDs(page), newest(all)[3:6])
	page, err = h.s.Messages(h.ctx, relay.MessageFilter{})
	h.must(err, "Messages without limit")
	sameStrings(t, "default limit page", messageIDs(page), newest(all))
	page, err = h.s.Messages(h.ctx, relay.MessageFilter{Submitter: "ci"})
	h.must(err, "Messages by submitter")
	sameStrings(t, "submitter ci", messageIDs(page), []string{all[5], all[3], all[1]})
}

func testMessagesStatusFilter(t *testing.T, h *harness) {
	queued := h.submit(h.msg(T0, "owner"))
	sending := h.submit(h.msg(T0, "owner", "alice"))
	partial := h.submit(h.msg(T0, "owner", "alice"))
	delivered := h.submit(h.msg(T0, "owner"))
	failed := h.submit(h.msg(T0, "owner"))
	cancelled := h.submit(h.msg(T0, "owner"))
	h.must(h.s.Cancel(h.ctx, cancelled.ID), "Cancel")
	if n := len(h.claim(T0, 100)); n != 7 {
		t.Fatalf("claimed %d deliveries, want 7", n)
	}
	settle := func(d *relay.Delivery, st relay.DeliveryState) {
		h.settle(relay.Settlement{DeliveryID: d.ID, State: st, Channel: "telegram", At: T0})
	}
	settle(partial.Deliveries[0], relay.StateDelivered)
	settle(partial.Deliveries[1], relay.StateFailed)
	settle(delivered.Deliveries[0], relay.StateDelivered)
	settle(failed.Deliveries[0], relay.StateFailed)
	settle(queued.Deliveries[0], relay.StateQueued) // back to queued, NextAt zero
	settle(sending.Deliveries[0], relay.StateDelivered)

	want := map[relay.MessageStatus][]string{
		relay.MessageStatus(relay.StateQueued):    {queued.ID},
		relay.MessageStatus(relay.StateSending):   {sending.ID},
		relay.StatusPartial:                       {partial.ID},
		relay.MessageStatus(relay.StateDelivered): {delivered.ID},
		relay.MessageStatus(relay.StateFailed):    {failed.ID},
		relay.MessageStatus(relay.StateCancelled): {cancelled.ID},
		relay.MessageStatus(relay.StateExpired):   nil,
	}
	for status, ids := range want {
		page, err := h.s.Messages(h.ctx, relay.MessageFilter{Status: status})
		h.must(err, "Messages by status")
		sameStrings(t, "status "+string(status), messageIDs(page), ids)
		for _, m := range page {
			if m.Status() != status {
				t.Errorf("message %s listed under %s derives status %s", m.ID, status, m.Status())
			}
		}
	}
}

func testCounts(t *testing.T, h *harness) {
	h.submit(h.msg(T0, "a", "b", "c"))
	m := h.submit(h.msg(T0.Add(time.Hour), "d", "e"))
	ds := h.claim(T0, 2)
	h.settle(relay.Settlement{DeliveryID: ds[0].ID, State: relay.StateDelivered, Channel: "telegram", At: T0})
	h.must(h.s.Cancel(h.ctx, m.ID), "Cancel")
	counts, err := h.s.Counts(h.ctx)
	h.must(err, "Counts")
	want := map[relay.DeliveryState]int{relay.StateQueued: 1, relay.StateSending: 1,
		relay.StateDelivered: 1, relay.StateCancelled: 2}
	for _, st := range []relay.DeliveryState{relay.StateQueued, relay.StateSending, relay.StateDelivered,
		relay.StateExpired, relay.StateFailed, relay.StateCancelled} {
		if counts[st] != want[st] {
			t.Errorf("Counts[%s] = %d, want %d", st, counts[st], want[st])
		}
	}
}
