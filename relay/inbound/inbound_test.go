package inbound

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/health"
	"github.com/relay-project/relay/relay/metrics"
	"github.com/relay-project/relay/relay/store/sqlite"
)

// clock is the injected time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// idle is an adapter the tests never send on: the dispatcher is not run,
// so the tests read what the pipeline queued straight from the store.
type idle struct{}

func (idle) Send(context.Context, *relay.Outgoing) (relay.Sent, error) { return relay.Sent{}, nil }
func (idle) Probe(context.Context) error                               { return nil }
func (idle) Close() error                                              { return nil }

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clock *clock
	store *sqlite.Store
	disp  *dispatch.Dispatcher
	p     *Pipeline
	m     *metrics.Metrics
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "relay.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	rt := &dispatch.Runtime{Channels: map[string]*dispatch.Channel{}, Directory: &relay.Directory{
		Contacts: map[string]*relay.Contact{"owner": {Name: "owner", Route: []string{"kakao", "telegram", "whatsapp"},
			Addresses: map[string]string{"kakao": "me", "telegram": "100", "whatsapp": "+82 10-1234-5678"}}},
	}}
	for name, typ := range map[string]string{"kakao": "kakao", "telegram": "telegram", "whatsapp": "whatsapp",
		"line": "line", "mail": "email"} {
		rt.Channels[name] = dispatch.NewChannel(name, typ, idle{}, 1, 0)
	}
	m := metrics.New()
	p := New(Options{Store: st, Metrics: m, Now: clk.now})
	d := dispatch.New(st, health.New(health.Options{Now: clk.now}), rt, dispatch.Options{Now: clk.now, Metrics: m,
		OnEnd: p.DeliveryEnded})
	p.Attach(d)
	if cfg.ForwardTo == nil {
		cfg.ForwardTo = []string{"owner"}
	}
	p.SetConfig(cfg)
	return &fixture{t: t, ctx: ctx, clock: clk, store: st, disp: d, p: p, m: m}
}

func (f *fixture) accept(m relay.InboundMessage) {
	f.t.Helper()
	if err := f.p.Accept(f.ctx, m); err != nil {
		f.t.Fatalf("Accept(%s): %v", m.UpstreamID, err)
	}
}

// queued returns every stored message, oldest first.
func (f *fixture) queued() []*relay.Message {
	f.t.Helper()
	ms, err := f.store.Messages(f.ctx, relay.MessageFilter{Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
		ms[i], ms[j] = ms[j], ms[i]
	}
	return ms
}

func (f *fixture) ofKind(k relay.MessageKind) []*relay.Message {
	var out []*relay.Message
	for _, m := range f.queued() {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// inbound reads relay_inbound_messages_total for LINE and a result.
func (f *fixture) inbound(result string) float64 {
	var m dto.Metric
	if err := f.p.m.Inbound.WithLabelValues("line", result).Write(&m); err != nil {
		f.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func customer(id, text string) relay.InboundMessage {
	return relay.InboundMessage{Channel: "line", UpstreamID: id, SenderID: "U4af4980629e3", SenderName: "김민수", Text: text}
}

func TestTags(t *testing.T) {
	seen := map[string]int64{}
	for n := int64(1); n < 5000; n++ {
		tag := ConversationTagFor(n)
		if prev, dup := seen[strings.ToUpper(tag)]; dup {
			t.Fatalf("tags of %d and %d are the same (case-insensitive): %s", prev, n, tag)
		}
		seen[tag] = n
		if got := relay.NormalizeTag("#" + strings.ToLower(tag)); got != tag {
			t.Fatalf("NormalizeTag(#%s) = %q, want %q", strings.ToLower(tag), got, tag)
		}
		if strings.ContainsAny(tag, "ILOU") {
			t.Fatalf("tag %s has an ambiguous letter", tag)
		}
	}
	if l := len(ConversationTagFor(1000)); l > 3 {
		t.Fatalf("tag of the 1000th conversation is %d characters, want at most 3", l)
	}
	for _, bad := range []string{"", "#", "7", "#77", "#K", "#K7!", "#IO"} {
		if got := relay.NormalizeTag(bad); got != "" {
			t.Errorf("NormalizeTag(%q) = %q, want no tag", bad, got)
		}
	}
	tag, rest := splitTag("  #k7, 네 가능합니다")
	if tag != "K7" || rest != "네 가능합니다" {
		t.Fatalf("splitTag = %q %q", tag, rest)
	}
	if tag, _ := splitTag("#1 in town"); tag != "" {
		t.Fatalf("a number was read as tag %q", tag)
	}
}

// ConversationTagFor is relay.ConversationTag, named for the test's table.
func ConversationTagFor(n int64) string { return relay.ConversationTag(n) }

func TestInquiryIsForwardedWithOriginAndTag(t *testing.T) {
	f := newFixture(t, Config{})
	f.accept(customer("ev1", "내일 2시에 예약 가능한가요?"))
	fw := f.ofKind(relay.KindInbound)
	if len(fw) != 1 {
		t.Fatalf("%d forwards, want 1", len(fw))
	}
	conv, err := f.store.Conversation(f.ctx, fw[0].ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	want := "[LINE · 김민수 · #" + conv.Tag + "] 내일 2시에 예약 가능한가요?"
	if fw[0].Text != want {
		t.Fatalf("forward text %q, want %q", fw[0].Text, want)
	}
	d := fw[0].Deliveries[0]
	if d.Contact != "owner" || d.Pinned || len(d.Route) != 3 || d.Route[0].Channel != "kakao" {
		t.Fatalf("forward delivery %+v: want the owner's route with failover", d)
	}
	f.accept(customer("ev1", "내일 2시에 예약 가능한가요?"))
	if n := len(f.ofKind(relay.KindInbound)); n != 1 || f.inbound("duplicate") != 1 {
		t.Fatalf("redelivery: %d forwards, duplicates counted %v", n, f.inbound("duplicate"))
	}
	f.accept(customer("ev2", "그리고 4명이에요"))
	fw = f.ofKind(relay.KindInbound)
	if len(fw) != 2 || fw[1].ConversationID != conv.ID || !strings.Contains(fw[1].Text, "#"+conv.Tag+"]") {
		t.Fatalf("second message from the same customer: %+v", fw)
	}
}

func TestLimitsKeepButDoNotForward(t *testing.T) {
	f := newFixture(t, Config{MaxLength: 10, RatePerHour: 2})
	f.accept(customer("long", strings.Repeat("가", 11)))
	f.accept(customer("a", "one"))
	f.accept(customer("b", "two"))
	f.accept(customer("c", "three"))
	if n := len(f.ofKind(relay.KindInbound)); n != 1 {
		t.Fatalf("%d forwards, want 1 (one too long, then rate %d/h with the long one counted)", n, 2)
	}
	if f.inbound(relay.HeldTooLong) != 1 || f.inbound(relay.HeldRateLimited) != 2 || f.inbound("forwarded") != 1 {
		t.Fatalf("metrics: too_long %v rate_limited %v forwarded %v", f.inbound(relay.HeldTooLong),
			f.inbound(relay.HeldRateLimited), f.inbound("forwarded"))
	}
	c, msgs, err := f.p.Get(f.ctx, f.ofKind(relay.KindInbound)[0].ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 || msgs[0].Held != relay.HeldTooLong || msgs[3].Held != relay.HeldRateLimited || c.Unanswered != 4 {
		t.Fatalf("held messages must be kept: %+v", msgs)
	}
	f.clock.add(time.Hour + time.Second)
	f.accept(customer("d", "later"))
	if n := len(f.ofKind(relay.KindInbound)); n != 2 {
		t.Fatalf("after an hour: %d forwards, want 2", n)
	}
}

func TestAutoReplyOncePerWindow(t *testing.T) {
	f := newFixture(t, Config{AutoReply: "감사합니다. 곧 답변드리겠습니다.", AutoReplyEvery: 24 * time.Hour})
	f.accept(customer("1", "hi"))
	f.clock.add(23 * time.Hour)
	f.accept(customer("2", "hello?"))
	auto := f.ofKind(relay.KindReply)
	if len(auto) != 1 {
		t.Fatalf("%d auto-replies within the window, want 1", len(auto))
	}
	d := auto[0].Deliveries[0]
	if !d.Pinned || len(d.Route) != 1 || d.Route[0] != (relay.Hop{Channel: "line", Address: "U4af4980629e3"}) {
		t.Fatalf("auto-reply route %+v, want only the customer's LINE", d.Route)
	}
	f.clock.add(time.Hour)
	f.accept(customer("3", "anyone?"))
	if n := len(f.ofKind(relay.KindReply)); n != 2 {
		t.Fatalf("after the window: %d auto-replies, want 2", n)
	}
	g := newFixture(t, Config{})
	g.accept(customer("1", "hi"))
	if n := len(g.ofKind(relay.KindReply)); n != 0 {
		t.Fatal("auto-reply sent with inbound.auto_reply empty")
	}
}

// deliveredForward fakes the dispatcher delivering the newest forward on
// channel with upstream id up.
func (f *fixture) deliveredForward(channel, up string) *relay.Conversation {
	f.t.Helper()
	fw := f.ofKind(relay.KindInbound)
	last := fw[len(fw)-1]
	ds, err := f.store.Claim(f.ctx, f.clock.now(), 100)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, d := range ds {
		if d.MessageID != last.ID {
			continue
		}
		id, err := f.store.StartAttempt(f.ctx, relay.Attempt{DeliveryID: d.ID, Channel: channel, At: f.clock.now()})
		if err != nil {
			f.t.Fatal(err)
		}
		a := relay.Attempt{ID: id, DeliveryID: d.ID, Channel: channel, Outcome: relay.OutcomeDelivered, UpstreamID: up}
		if err := f.store.Settle(f.ctx, relay.Settlement{DeliveryID: d.ID, State: relay.StateDelivered, Channel: channel,
			Attempt: &a, At: f.clock.now()}); err != nil {
			f.t.Fatal(err)
		}
	}
	c, err := f.store.Conversation(f.ctx, last.ConversationID)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func wantReply(t *testing.T, f *fixture, n int, text string) *relay.Message {
	t.Helper()
	rs := f.ofKind(relay.KindReply)
	if len(rs) != n {
		t.Fatalf("%d replies, want %d", len(rs), n)
	}
	r := rs[n-1]
	d := r.Deliveries[0]
	if r.Text != text || !d.Pinned || len(d.Route) != 1 || d.Route[0] != (relay.Hop{Channel: "line", Address: "U4af4980629e3"}) {
		t.Fatalf("reply %q over %+v (pinned %v), want %q over the customer's LINE only", r.Text, d.Route, d.Pinned, text)
	}
	return r
}

func TestOwnerRepliesReachTheCustomer(t *testing.T) {
	f := newFixture(t, Config{})
	f.accept(customer("ev1", "예약 가능한가요?"))
	conv := f.deliveredForward("telegram", "100:55")

	// (a) a Telegram reply to the forwarded message.
	f.accept(relay.InboundMessage{Channel: "telegram", UpstreamID: "100:56", SenderID: "100", Text: "네, 가능합니다", ReplyTo: "100:55"})
	wantReply(t, f, 1, "네, 가능합니다")
	f.accept(relay.InboundMessage{Channel: "telegram", UpstreamID: "100:56", SenderID: "100", Text: "네, 가능합니다", ReplyTo: "100:55"})
	wantReply(t, f, 1, "네, 가능합니다") // redelivered: no second reply

	// (b) a tag, from WhatsApp, where the owner's number is written differently.
	f.accept(relay.InboundMessage{Channel: "whatsapp", UpstreamID: "3EB0A", SenderID: "+821012345678",
		Text: "#" + strings.ToLower(conv.Tag) + " 2시에 뵙겠습니다"})
	wantReply(t, f, 2, "2시에 뵙겠습니다")

	// (c) the API / CLI, by tag.
	m, _, err := f.p.Reply(f.ctx, strings.ToLower(conv.Tag), "주차 가능합니다", "cli")
	if err != nil {
		t.Fatal(err)
	}
	if r := wantReply(t, f, 3, "주차 가능합니다"); r.ID != m.ID {
		t.Fatalf("Reply returned %s, stored %s", m.ID, r.ID)
	}
	_, msgs, _ := f.p.Get(f.ctx, conv.ID)
	if len(msgs) != 4 || msgs[1].Direction != relay.DirectionOut || msgs[1].Channel != "telegram" {
		t.Fatalf("conversation messages %+v", msgs)
	}
	if c, _ := f.store.Conversation(f.ctx, conv.ID); c.Unanswered != 0 {
		t.Fatalf("answered conversation still counts %d unanswered", c.Unanswered)
	}
	if _, _, err := f.p.Reply(f.ctx, "Z9999", "x", "cli"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("reply to an unknown tag: %v", err)
	}
}

func TestOwnerWithoutTargetGetsHelp(t *testing.T) {
	f := newFixture(t, Config{})
	f.accept(customer("ev1", "hi"))
	conv := f.deliveredForward("telegram", "100:55")
	for _, m := range []relay.InboundMessage{
		{UpstreamID: "100:60", Text: "hello?"},
		{UpstreamID: "100:60", Text: "hello?"}, // redelivered: one help answer
		{UpstreamID: "100:61", Text: "#Z9999 wrong tag"},
		{UpstreamID: "100:62", Text: "reply to a notice", ReplyTo: "100:1"},
		{UpstreamID: "100:63", Text: "#" + conv.Tag},
	} {
		m.Channel, m.SenderID = "telegram", "100"
		f.accept(m)
	}
	if n := len(f.ofKind(relay.KindReply)); n != 0 {
		t.Fatalf("%d replies sent to the customer from messages that named no conversation", n)
	}
	help := f.ofKind(relay.KindNotice)
	if len(help) != 4 {
		t.Fatalf("%d help answers, want 4", len(help))
	}
	d := help[0].Deliveries[0]
	if !d.Pinned || d.Route[0] != (relay.Hop{Channel: "telegram", Address: "100"}) {
		t.Fatalf("help goes %+v, want back to the owner's Telegram", d.Route)
	}
	if !strings.Contains(help[0].Text, "#"+conv.Tag) || !strings.Contains(help[1].Text, "no conversation #Z9999") {
		t.Fatalf("help texts: %q / %q", help[0].Text, help[1].Text)
	}
}

func TestFailedReplyTellsTheOwner(t *testing.T) {
	f := newFixture(t, Config{AutoReply: "thanks", AutoReplyEvery: time.Hour})
	f.accept(customer("ev1", "hi"))
	conv := f.deliveredForward("telegram", "100:55")
	reply, _, err := f.p.Reply(f.ctx, conv.ID, "we are open", "cli")
	if err != nil {
		t.Fatal(err)
	}
	auto := f.ofKind(relay.KindReply)[0]
	f.p.DeliveryEnded(&relay.Delivery{MessageID: auto.ID, Kind: relay.KindReply}, relay.StateFailed)
	if n := len(f.ofKind(relay.KindNotice)); n != 0 {
		t.Fatal("a failed auto-reply bothered the owner")
	}
	f.p.DeliveryEnded(&relay.Delivery{MessageID: reply.ID, Kind: relay.KindReply, LastError: "line: 400 invalid to"}, relay.StateFailed)
	n := f.ofKind(relay.KindNotice)
	if len(n) != 1 || n[0].Deliveries[0].Contact != "owner" || n[0].ConversationID != conv.ID ||
		!strings.Contains(n[0].Text, "not delivered") || !strings.Contains(n[0].Text, "line: 400 invalid to") {
		t.Fatalf("notice %+v", n)
	}
	f.p.DeliveryEnded(&relay.Delivery{MessageID: reply.ID, Kind: relay.KindReply}, relay.StateDelivered)
	if len(f.ofKind(relay.KindNotice)) != 1 {
		t.Fatal("a delivered reply caused a notice")
	}
}

func TestWebForm(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.p.AcceptForm(f.ctx, "Kim", "Kim@Example.com", "do you deliver?"); err != nil {
		t.Fatal(err)
	}
	fw := f.ofKind(relay.KindInbound)
	if len(fw) != 1 || !strings.HasPrefix(fw[0].Text, "[web form · Kim <kim@example.com> · #") {
		t.Fatalf("form forward: %+v", fw)
	}
	if _, _, err := f.p.Reply(f.ctx, fw[0].ConversationID, "yes", "cli"); err != nil {
		t.Fatal(err)
	}
	r := f.ofKind(relay.KindReply)
	if len(r) != 1 || r[0].Deliveries[0].Route[0] != (relay.Hop{Channel: "mail", Address: "kim@example.com"}) {
		t.Fatalf("form reply goes %+v, want e-mail", r[0].Deliveries[0].Route)
	}
	if err := f.p.AcceptForm(f.ctx, "Lee", "+82 10-5555-6666", "hi"); err != nil {
		t.Fatal(err)
	}
	c, _ := f.store.Conversation(f.ctx, f.ofKind(relay.KindInbound)[1].ConversationID)
	if _, _, err := f.p.Reply(f.ctx, c.ID, "yes", "cli"); !errors.Is(err, relay.ErrCannotReply) {
		t.Fatalf("reply to a phone without an SMS channel: %v", err)
	}
	g := newFixture(t, Config{AutoReply: "thanks", AutoReplyEvery: time.Hour})
	if err := g.p.AcceptForm(g.ctx, "Lee", "010-5555-6666", "hi"); err != nil {
		t.Fatalf("a form inquiry with no channel for the auto-reply: %v", err)
	}
	if len(g.ofKind(relay.KindInbound)) != 1 || len(g.ofKind(relay.KindReply)) != 0 {
		t.Fatal("the inquiry must be forwarded without an auto-reply")
	}
	for _, bad := range [][3]string{{"a", "", "t"}, {"a", "kim@", "t"}, {"a", "call me", "t"}, {"a", "kim@example.com", " "}} {
		if err := f.p.AcceptForm(f.ctx, bad[0], bad[1], bad[2]); !errors.Is(err, relay.ErrInvalidInbound) {
			t.Errorf("AcceptForm%q: %v, want ErrInvalidInbound", bad, err)
		}
	}
}

// TestOwnerMatchIsExactExceptPhoneNumbers: a Telegram group "-123456789"
// is not the owner "123456789"; phone numbers written with their country
// code compare by digits.
func TestOwnerMatchIsExactExceptPhoneNumbers(t *testing.T) {
	cases := []struct {
		configured, reported string
		want                 bool
	}{
		{"123456789", "123456789", true},
		{"123456789", "-123456789", false},
		{"+82 10-1234-5678", "+821012345678", true},
		{"+82 10-1234-5678", "+821099999999", false},
		{"010-1234-5678", "+821012345678", false},
	}
	for _, c := range cases {
		if got := sameAddress(c.configured, c.reported); got != c.want {
			t.Errorf("sameAddress(%q, %q) = %v, want %v", c.configured, c.reported, got, c.want)
		}
	}
}

// TestOwnerReplyToRemovedChannelIsNotAnError: a reload removed the
// customer's channel; the owner's "#tag" reply gets a help answer, and
// Accept succeeds, or the adapter would redeliver the owner's message
// forever (a Telegram poller stuck behind it).
func TestOwnerReplyToRemovedChannelIsNotAnError(t *testing.T) {
	f := newFixture(t, Config{})
	f.accept(customer("ev1", "hello"))
	list, _ := f.store.Conversations(f.ctx, 10)
	c := list[0]
	old := f.disp.Runtime()
	rt := &dispatch.Runtime{Channels: map[string]*dispatch.Channel{}, Directory: old.Directory}
	for n, ch := range old.Channels {
		if n != "line" {
			rt.Channels[n] = ch
		}
	}
	f.disp.SetRuntime(rt)
	if err := f.p.Accept(f.ctx, relay.InboundMessage{Channel: "telegram", UpstreamID: "100:7", SenderID: "100",
		Text: "#" + c.Tag + " we are open"}); err != nil {
		t.Fatalf("owner's reply returned %v: the adapter will redeliver it forever", err)
	}
}

func TestClipHeldText(t *testing.T) {
	if got := clip("안녕하세요", 10); got != "안녕하세요" {
		t.Fatalf("short text changed: %q", got)
	}
	if got := clip("안녕하세요", 2); got != "안녕… [3 more characters not kept]" {
		t.Fatalf("clip: %q", got)
	}
}
