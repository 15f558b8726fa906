package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// RunConversations runs the relay.ConversationStore suite. open must return
// a new, empty store that also implements relay.ConversationStore.
func RunConversations(t *testing.T, open func(t *testing.T) relay.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness, cs relay.ConversationStore)
	}{
		{"OpenConversation", testOpenConversation},
		{"OpenConversationConcurrent", testOpenConversationConcurrent},
		{"RecordWithForward", testRecordWithForward},
		{"RecordDuplicate", testRecordDuplicate},
		{"AutoReplyWindow", testAutoReplyWindow},
		{"ConversationLookup", testConversationLookup},
		{"ConversationBySent", testConversationBySent},
		{"CountInbound", testCountInbound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			cs, ok := s.(relay.ConversationStore)
			if !ok {
				t.Fatalf("%T does not implement relay.ConversationStore", s)
			}
			tc.fn(t, &harness{t: t, s: s, ctx: context.Background()}, cs)
		})
	}
}

func (h *harness) open(cs relay.ConversationStore, channel, sender, name string) *relay.Conversation {
	h.t.Helper()
	c, err := cs.OpenConversation(h.ctx, relay.Conversation{ID: h.id("01C"), Channel: channel, SenderID: sender,
		SenderName: name, CreatedAt: T0})
	if err != nil {
		h.t.Fatalf("OpenConversation(%s, %s): %v", channel, sender, err)
	}
	return c
}

func (h *harness) record(cs relay.ConversationStore, e relay.ConversationEntry) relay.Recorded {
	h.t.Helper()
	r, err := cs.Record(h.ctx, e)
	if err != nil {
		h.t.Fatalf("Record: %v", err)
	}
	return r
}

func inbound(c *relay.Conversation, upstream, text string, at time.Time) relay.ConversationMessage {
	return relay.ConversationMessage{ConversationID: c.ID, Direction: relay.DirectionIn, Channel: c.Channel,
		UpstreamID: upstream, Text: text, At: at}
}

func testOpenConversation(t *testing.T, h *harness, cs relay.ConversationStore) {
	a := h.open(cs, "line", "U1", "")
	if a.Seq != 1 || a.Tag != relay.ConversationTag(1) {
		t.Fatalf("first conversation: seq %d tag %q, want 1 %q", a.Seq, a.Tag, relay.ConversationTag(1))
	}
	again := h.open(cs, "line", "U1", "김민수")
	if again.ID != a.ID || again.Tag != a.Tag || again.SenderName != "김민수" {
		t.Fatalf("reopened: %+v, want the same conversation %s named 김민수", again, a.ID)
	}
	if kept := h.open(cs, "line", "U1", ""); kept.SenderName != "김민수" {
		t.Fatalf("an empty name replaced the stored one: %q", kept.SenderName)
	}
	b := h.open(cs, "telegram", "U1", "")
	if b.ID == a.ID || b.Tag == a.Tag {
		t.Fatal("the same sender id on another channel shares a conversation")
	}
}

func testOpenConversationConcurrent(t *testing.T, h *harness, cs relay.ConversationStore) {
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cs.OpenConversation(h.ctx, relay.Conversation{ID: "01CONC" + string(rune('A'+i)), Channel: "line",
				SenderID: "U9", CreatedAt: T0})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent opens made several conversations: %v", ids)
		}
	}
}

func testRecordWithForward(t *testing.T, h *harness, cs relay.ConversationStore) {
	c := h.open(cs, "line", "U1", "김민수")
	fwd := h.msg(T0, "owner")
	fwd.Kind, fwd.ConversationID = relay.KindInbound, c.ID
	r := h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev1", "예약 가능한가요?", T0), Submit: fwd, Now: T0})
	if r.Duplicate || r.Message.MessageID != fwd.ID || r.Message.ID == 0 {
		t.Fatalf("Record: %+v, want a new message carried by %s", r, fwd.ID)
	}
	m := h.get(fwd.ID)
	if m.Kind != relay.KindInbound || m.ConversationID != c.ID || len(m.Deliveries) != 1 ||
		m.Deliveries[0].State != relay.StateQueued {
		t.Fatalf("forward stored as %+v", m)
	}
	if ds := h.claim(T0, 10); len(ds) != 1 || ds[0].MessageID != fwd.ID {
		t.Fatalf("the forward is not claimable: %v", ids(ds))
	}
	h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev2", "2시요", T0.Add(time.Second)), Now: T0})
	got, err := cs.Conversation(h.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Unanswered != 2 || got.LastText != "2시요" || got.LastDirection != relay.DirectionIn {
		t.Fatalf("after two inbound: %+v", got)
	}
	reply := relay.ConversationMessage{ConversationID: c.ID, Direction: relay.DirectionOut, Text: "네", At: T0.Add(2 * time.Second)}
	h.record(cs, relay.ConversationEntry{Message: reply, Now: T0})
	got, _ = cs.Conversation(h.ctx, c.ID)
	if got.Unanswered != 0 || got.LastDirection != relay.DirectionOut {
		t.Fatalf("after a reply: %+v", got)
	}
	msgs, err := cs.ConversationMessages(h.ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || msgs[0].Text != "예약 가능한가요?" || msgs[2].Text != "네" {
		t.Fatalf("messages oldest first: %+v", msgs)
	}
	if msgs[0].MessageStatus != relay.MessageStatus(relay.StateSending) {
		t.Fatalf("status of the claimed forward: %q, want sending", msgs[0].MessageStatus)
	}
	if last, _ := cs.ConversationMessages(h.ctx, c.ID, 1); len(last) != 1 || last[0].Text != "네" {
		t.Fatalf("limit 1 returns %+v, want the newest", last)
	}
}

func testRecordDuplicate(t *testing.T, h *harness, cs relay.ConversationStore) {
	c := h.open(cs, "line", "U1", "")
	first := h.msg(T0, "owner")
	h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev1", "hi", T0), Submit: first, Now: T0})
	second := h.msg(T0, "owner")
	r := h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev1", "hi", T0), Submit: second, Now: T0})
	if !r.Duplicate {
		t.Fatal("a redelivered upstream id was recorded again")
	}
	if _, err := h.s.Message(h.ctx, second.ID); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("the duplicate's forward was stored: %v", err)
	}
	other := h.open(cs, "telegram", "5", "")
	if r := h.record(cs, relay.ConversationEntry{Message: inbound(other, "ev1", "hi", T0), Now: T0}); r.Duplicate {
		t.Fatal("the same upstream id on another channel counted as a duplicate")
	}
}

func testAutoReplyWindow(t *testing.T, h *harness, cs relay.ConversationStore) {
	c := h.open(cs, "line", "U1", "")
	every := time.Hour
	try := func(n int, at time.Time) (relay.Recorded, *relay.Message) {
		auto := h.msg(at, "customer")
		auto.Kind, auto.Text = relay.KindReply, "thanks"
		r := h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev"+string(rune('0'+n)), "q", at),
			AutoReply: auto, AutoReplyEvery: every, Now: at})
		return r, auto
	}
	r, auto := try(1, T0)
	if !r.AutoReplied {
		t.Fatal("first message got no auto-reply")
	}
	h.get(auto.ID)
	r, auto = try(2, T0.Add(59*time.Minute))
	if r.AutoReplied {
		t.Fatal("second auto-reply inside the window")
	}
	if _, err := h.s.Message(h.ctx, auto.ID); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("suppressed auto-reply stored: %v", err)
	}
	if r, _ = try(3, T0.Add(time.Hour)); !r.AutoReplied {
		t.Fatal("no auto-reply once the window passed")
	}
	got, _ := cs.Conversation(h.ctx, c.ID)
	if got.Unanswered != 3 || got.LastDirection != relay.DirectionIn {
		t.Fatalf("auto-replies count as answers: %+v", got)
	}
}

func testConversationLookup(t *testing.T, h *harness, cs relay.ConversationStore) {
	var last *relay.Conversation
	for i := range 40 {
		last = h.open(cs, "line", "U"+string(rune('A'+i)), "")
	}
	for _, key := range []string{last.ID, last.Tag, "#" + last.Tag, "  " + lower(last.Tag)} {
		got, err := cs.Conversation(h.ctx, key)
		if err != nil || got.ID != last.ID {
			t.Fatalf("Conversation(%q) = %v, %v; want %s", key, got, err, last.ID)
		}
	}
	if _, err := cs.Conversation(h.ctx, "Z999"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("unknown tag: %v, want ErrNotFound", err)
	}
	first := h.open(cs, "line", "UA", "")
	h.record(cs, relay.ConversationEntry{Message: inbound(first, "x", "newest", T0.Add(time.Hour)), Now: T0})
	list, err := cs.Conversations(h.ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != first.ID || list[1].ID != last.ID {
		t.Fatalf("Conversations(3): newest message first, got %d starting %v", len(list), list[0].ID)
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func testConversationBySent(t *testing.T, h *harness, cs relay.ConversationStore) {
	c := h.open(cs, "line", "U1", "")
	fwd := h.msg(T0, "owner")
	fwd.ConversationID = c.ID
	h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev1", "hi", T0), Submit: fwd, Now: T0})
	d := h.claimOne(T0, fwd.Deliveries[0].ID)
	id := h.start(d.ID, "telegram", T0)
	h.must(h.s.EndAttempt(h.ctx, relay.Attempt{ID: id, DeliveryID: d.ID, Channel: "telegram",
		Outcome: relay.OutcomeDelivered, UpstreamID: "42:7"}), "EndAttempt")
	got, err := cs.ConversationBySent(h.ctx, "telegram", "42:7")
	if err != nil || got.ID != c.ID {
		t.Fatalf("ConversationBySent = %v, %v; want %s", got, err, c.ID)
	}
	for _, tc := range [][2]string{{"email", "42:7"}, {"telegram", "42:8"}, {"telegram", ""}} {
		if _, err := cs.ConversationBySent(h.ctx, tc[0], tc[1]); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("ConversationBySent(%q, %q): %v, want ErrNotFound", tc[0], tc[1], err)
		}
	}
	plain := h.submit(h.msg(T0, "owner"))
	d = h.claimOne(T0, plain.Deliveries[0].ID)
	id = h.start(d.ID, "telegram", T0)
	h.must(h.s.EndAttempt(h.ctx, relay.Attempt{ID: id, DeliveryID: d.ID, Channel: "telegram",
		Outcome: relay.OutcomeDelivered, UpstreamID: "42:9"}), "EndAttempt")
	if _, err := cs.ConversationBySent(h.ctx, "telegram", "42:9"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("a message outside conversations matched: %v", err)
	}
}

func testCountInbound(t *testing.T, h *harness, cs relay.ConversationStore) {
	c := h.open(cs, "line", "U1", "")
	for i := range 4 {
		h.record(cs, relay.ConversationEntry{Message: inbound(c, "ev"+string(rune('0'+i)), "q", T0.Add(time.Duration(i)*time.Minute)), Now: T0})
	}
	h.record(cs, relay.ConversationEntry{Message: relay.ConversationMessage{ConversationID: c.ID,
		Direction: relay.DirectionOut, Text: "a", At: T0.Add(3 * time.Minute)}, Now: T0})
	n, err := cs.CountInbound(h.ctx, c.ID, T0.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("CountInbound = %d, %v; want 2 (outgoing not counted)", n, err)
	}
}
