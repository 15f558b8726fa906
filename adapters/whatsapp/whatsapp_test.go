package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

const owner = "+82 10-1234-5678"

func out(key, addr, text string) *relay.Outgoing {
	return &relay.Outgoing{MessageID: "m1", DeliveryID: "d1", Address: addr, Text: text, Part: 1, Parts: 1, Key: key}
}

// linkedRig starts an adapter on a linked, logged-in fake client on which
// the owner's number is on WhatsApp.
func linkedRig(t *testing.T) (*rig, *fakeClient) {
	t.Helper()
	c := newFakeClient(true)
	c.onWA["+821012345678"] = true
	r := newRig(t, Config{}, c)
	waitConnected(t, c)
	c.login()
	c.emit(&events.Connected{})
	if s := r.rec.next(t); s.Down {
		t.Fatalf("after Connected: %+v, want up", s)
	}
	return r, c
}

func TestConnectedLinkedChannelIsUp(t *testing.T) {
	r, _ := linkedRig(t)
	if err := r.a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe of a connected, logged-in channel: %v", err)
	}
	if got := r.a.LinkedAccount(); got != "+821099990000" {
		t.Fatalf("LinkedAccount = %q", got)
	}
}

func TestEventsMapToHealth(t *testing.T) {
	cases := []struct {
		name       string
		evt        any
		wantReason string // "" means: no signal, the probe decides
		wantUntil  time.Duration
	}{
		{"logged out", &events.LoggedOut{Reason: events.ConnectFailureLoggedOut}, "WhatsApp was logged out (401: logged out from another device): run relay whatsapp link", 0},
		{"temporary ban", &events.TemporaryBan{Code: events.TempBanSentTooManySameMessage, Expire: 2 * time.Hour}, "you sent the same message to too many people", 2 * time.Hour},
		{"stream replaced", &events.StreamReplaced{}, "stream replaced", 0},
		{"client outdated", &events.ClientOutdated{}, "upgrade relay", 0},
		{"connect failure", &events.ConnectFailure{Reason: events.ConnectFailureBadUserAgent}, "409", 0},
		{"server trouble reconnects", &events.ConnectFailure{Reason: events.ConnectFailureServiceUnavailable}, "", 0},
		{"disconnected reconnects", &events.Disconnected{}, "", 0},
		{"keep-alive timeout", &events.KeepAliveTimeout{ErrorCount: 2}, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, c := linkedRig(t)
			c.emit(tc.evt)
			if tc.wantReason == "" {
				select {
				case s := <-r.rec.sigCh:
					t.Fatalf("signal %+v, want none", s)
				default:
				}
				return
			}
			s := r.rec.next(t)
			if !s.Down || !s.Notify || !strings.Contains(s.Reason, tc.wantReason) {
				t.Fatalf("signal %+v, want down with notice and reason containing %q", s, tc.wantReason)
			}
			if tc.wantUntil > 0 && !s.Until.Equal(r.clk.now().Add(tc.wantUntil)) {
				t.Fatalf("Until = %v, want now+%v", s.Until, tc.wantUntil)
			}
			if err := r.a.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), tc.wantReason) {
				t.Fatalf("Probe = %v, want the reason", err)
			}
			_, err := r.a.Send(context.Background(), out("k", owner, "hi"))
			if relay.KindOf(err) != relay.KindAuth {
				t.Fatalf("Send while down: %v (kind %v), want auth", err, relay.KindOf(err))
			}
			if tc.wantUntil > 0 && relay.RetryAfterOf(err) != tc.wantUntil {
				t.Fatalf("RetryAfter = %v, want %v", relay.RetryAfterOf(err), tc.wantUntil)
			}
			c.emit(&events.Connected{})
			if s := r.rec.next(t); s.Down {
				t.Fatalf("after reconnect: %+v, want up", s)
			}
		})
	}
}

func TestTemporaryBanReconnectsWhenItEnds(t *testing.T) {
	r, c := linkedRig(t)
	c.Disconnect() // the server closes the connection with the ban
	c.emit(&events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: time.Millisecond})
	r.rec.next(t)
	waitConnected(t, c)
}

func TestProbeFailsWhileReconnecting(t *testing.T) {
	r, c := linkedRig(t)
	c.Disconnect()
	c.emit(&events.Disconnected{})
	if err := r.a.Probe(context.Background()); err == nil {
		t.Fatal("Probe succeeded while disconnected")
	}
}

func TestNeverLinkedChannelIsDownButStarts(t *testing.T) {
	c := newFakeClient(false)
	r := newRig(t, Config{}, c)
	s := r.rec.next(t)
	if !s.Down || s.Reason != "not linked: run relay whatsapp link" || s.Notify {
		t.Fatalf("signal %+v, want down, not linked, no notice", s)
	}
	if err := r.a.Probe(context.Background()); err == nil || !strings.Contains(err.Error(), "not linked") {
		t.Fatalf("Probe = %v, want not linked", err)
	}
	if _, err := r.a.Send(context.Background(), out("k", owner, "hi")); relay.KindOf(err) != relay.KindAuth {
		t.Fatalf("Send = %v, want auth", err)
	}
	if c.connects != 0 {
		t.Fatalf("an unlinked device was connected %d times", c.connects)
	}
	if r.a.LinkedAccount() != "" {
		t.Fatalf("LinkedAccount = %q, want empty", r.a.LinkedAccount())
	}
}

var idShape = regexp.MustCompile(`^3EB0[0-9A-F]{18}$`)

func TestRetryReusesMessageID(t *testing.T) {
	r, c := linkedRig(t)
	c.sendErrs = []error{whatsmeow.ErrMessageTimedOut}
	key := "01DELIVERY/wa/1"
	_, err := r.a.Send(context.Background(), out(key, owner, "hello"))
	if relay.KindOf(err) != relay.KindAmbiguous {
		t.Fatalf("first send: %v, want ambiguous", err)
	}
	r.clk.add(3 * time.Second)
	sent, err := r.a.Send(context.Background(), out(key, owner, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.sent) != 2 || c.sent[0].id != c.sent[1].id {
		t.Fatalf("retry used another message ID: %+v", c.sent)
	}
	if sent.UpstreamID != string(c.sent[0].id) || !idShape.MatchString(sent.UpstreamID) {
		t.Fatalf("UpstreamID %q, sent %q", sent.UpstreamID, c.sent[0].id)
	}
	if c.sent[1].to.String() != "821012345678@s.whatsapp.net" || c.sent[1].text != "hello" {
		t.Fatalf("sent %+v", c.sent[1])
	}
	if messageID("other/key") == c.sent[0].id {
		t.Fatal("different keys gave the same message ID")
	}
	if !r.a.Idempotent() {
		t.Fatal("Idempotent() = false")
	}
}

func TestOnWhatsAppCheckedOncePerNumber(t *testing.T) {
	r, c := linkedRig(t)
	for i := range 3 {
		r.clk.add(3 * time.Second)
		if _, err := r.a.Send(context.Background(), out(fmt.Sprint(i), "+821012345678", "x")); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		_, err := r.a.Send(context.Background(), out("n", "+44 20 7946 0018", "x"))
		if relay.KindOf(err) != relay.KindPermanent {
			t.Fatalf("send to a number not on WhatsApp: %v, want permanent", err)
		}
	}
	if c.lookups != 2 {
		t.Fatalf("%d IsOnWhatsApp queries, want one per number (2)", c.lookups)
	}
	if c.sentCount() != 3 {
		t.Fatalf("%d sends, want 3", c.sentCount())
	}
}

func TestPacingPerRecipient(t *testing.T) {
	r, _ := linkedRig(t)
	if _, err := r.a.Send(context.Background(), out("1", owner, "a")); err != nil {
		t.Fatal(err)
	}
	// The attempt has less time left than the pacing wait: rate limited.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := r.a.Send(ctx, out("2", owner, "b"))
	if relay.KindOf(err) != relay.KindRateLimited || relay.RetryAfterOf(err) != 3*time.Second {
		t.Fatalf("second send at once: %v (retry after %v), want rate limited 3s", err, relay.RetryAfterOf(err))
	}
	r.clk.add(3 * time.Second)
	if _, err := r.a.Send(ctx, out("2", owner, "b")); err != nil {
		t.Fatalf("after 3s: %v", err)
	}
}

func TestSameTextToManyPeopleIsRefused(t *testing.T) {
	r, c := linkedRig(t)
	for i := range 7 {
		c.onWA[fmt.Sprintf("+8210000000%02d", i)] = true
	}
	ctx := context.Background()
	for i := range 5 {
		r.clk.add(3 * time.Second)
		if _, err := r.a.Send(ctx, out(fmt.Sprint(i), fmt.Sprintf("+8210000000%02d", i), "Sale! 50% off")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	r.clk.add(3 * time.Second)
	_, err := r.a.Send(ctx, out("5", "+821000000005", "Sale! 50% off"))
	if relay.KindOf(err) != relay.KindRateLimited {
		t.Fatalf("6th recipient of the same text: %v, want rate limited", err)
	}
	if want := 10*time.Minute - 15*time.Second; relay.RetryAfterOf(err) != want {
		t.Fatalf("RetryAfter = %v, want %v (until the first send leaves the window)", relay.RetryAfterOf(err), want)
	}
	// A resend to someone who already got it, and other text, still go.
	r.clk.add(3 * time.Second)
	if _, err := r.a.Send(ctx, out("0", "+821000000000", "Sale! 50% off")); err != nil {
		t.Fatalf("resend to a recipient in the window: %v", err)
	}
	if _, err := r.a.Send(ctx, out("6", "+821000000006", "hello")); err != nil {
		t.Fatalf("other text: %v", err)
	}
	r.clk.add(10 * time.Minute)
	if _, err := r.a.Send(ctx, out("5", "+821000000005", "Sale! 50% off")); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	r, _ := linkedRig(t)
	if _, err := r.a.Send(context.Background(), out("k", "010-1234-5678", "hi")); relay.KindOf(err) != relay.KindPermanent {
		t.Fatalf("national number: %v, want permanent", err)
	}
	if _, err := r.a.Send(context.Background(), out("k", owner, "  ")); relay.KindOf(err) != relay.KindInvalid {
		t.Fatalf("empty text: %v, want invalid", err)
	}
	if r.a.TextLimit() != 4096 {
		t.Fatalf("TextLimit = %d", r.a.TextLimit())
	}
}

func TestReceiptsReachTheSink(t *testing.T) {
	r, c := linkedRig(t)
	at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	peer := types.NewJID("821012345678", types.DefaultUserServer)
	c.emit(&events.Receipt{MessageSource: types.MessageSource{Chat: peer, Sender: peer},
		MessageIDs: []types.MessageID{"3EB0AA", "3EB0BB"}, Timestamp: at, Type: types.ReceiptTypeDelivered})
	c.emit(&events.Receipt{MessageSource: types.MessageSource{Chat: peer, Sender: peer},
		MessageIDs: []types.MessageID{"3EB0AA"}, Timestamp: at.Add(time.Minute), Type: types.ReceiptTypeRead})
	c.emit(&events.Receipt{MessageSource: types.MessageSource{Chat: peer, IsFromMe: true},
		MessageIDs: []types.MessageID{"X"}, Timestamp: at, Type: types.ReceiptTypeSender})
	want := []receiptCall{
		{"wa", "3EB0AA", relay.ReceiptDelivered, at},
		{"wa", "3EB0BB", relay.ReceiptDelivered, at},
		{"wa", "3EB0AA", relay.ReceiptRead, at.Add(time.Minute)},
	}
	if fmt.Sprint(r.rec.receipts) != fmt.Sprint(want) {
		t.Fatalf("receipts %v, want %v", r.rec.receipts, want)
	}
}

func TestInboundMessages(t *testing.T) {
	phoneJID := types.NewJID("821012345678", types.DefaultUserServer)
	lidJID := types.NewJID("123456789", types.HiddenUserServer)
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	info := func(id string) types.MessageInfo {
		return types.MessageInfo{ID: types.MessageID(id), PushName: "Kim", Timestamp: at,
			MessageSource: types.MessageSource{Chat: phoneJID, Sender: phoneJID}}
	}
	cases := []struct {
		name string
		evt  *events.Message
		want *relay.InboundMessage // nil: not forwarded
	}{
		{"text", &events.Message{Info: info("A1"), Message: &waE2E.Message{Conversation: proto.String("table 4?")}},
			&relay.InboundMessage{UpstreamID: "A1", SenderID: "+821012345678", Text: "table 4?"}},
		{"reply", &events.Message{Info: info("A2"), Message: &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{
			Text: proto.String("yes"), ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("3EB0QUOTED")}}}},
			&relay.InboundMessage{UpstreamID: "A2", SenderID: "+821012345678", Text: "yes", ReplyTo: "3EB0QUOTED"}},
		{"photo with caption", &events.Message{Info: info("A3"), Message: &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String("menu")}}},
			&relay.InboundMessage{UpstreamID: "A3", SenderID: "+821012345678", Text: "[photo] menu"}},
		{"video", &events.Message{Info: info("A4"), Message: &waE2E.Message{VideoMessage: &waE2E.VideoMessage{}}},
			&relay.InboundMessage{UpstreamID: "A4", SenderID: "+821012345678", Text: "[video]"}},
		{"voice", &events.Message{Info: info("A5"), Message: &waE2E.Message{AudioMessage: &waE2E.AudioMessage{PTT: proto.Bool(true)}}},
			&relay.InboundMessage{UpstreamID: "A5", SenderID: "+821012345678", Text: "[voice]"}},
		{"document", &events.Message{Info: info("A6"), Message: &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{}}},
			&relay.InboundMessage{UpstreamID: "A6", SenderID: "+821012345678", Text: "[document]"}},
		{"sticker", &events.Message{Info: info("A7"), Message: &waE2E.Message{StickerMessage: &waE2E.StickerMessage{}}},
			&relay.InboundMessage{UpstreamID: "A7", SenderID: "+821012345678", Text: "[sticker]"}},
		{"hidden number, phone known", &events.Message{Info: types.MessageInfo{ID: "A8", PushName: "Kim", Timestamp: at,
			MessageSource: types.MessageSource{Chat: lidJID, Sender: lidJID, SenderAlt: phoneJID}},
			Message: &waE2E.Message{Conversation: proto.String("hi")}},
			&relay.InboundMessage{UpstreamID: "A8", SenderID: "+821012345678", Text: "hi"}},
		{"hidden number", &events.Message{Info: types.MessageInfo{ID: "A9", PushName: "Kim", Timestamp: at,
			MessageSource: types.MessageSource{Chat: lidJID, Sender: lidJID}},
			Message: &waE2E.Message{Conversation: proto.String("hi")}},
			&relay.InboundMessage{UpstreamID: "A9", SenderID: "123456789@lid", Text: "hi"}},
		{"own message", &events.Message{Info: types.MessageInfo{ID: "B1", MessageSource: types.MessageSource{Chat: phoneJID, IsFromMe: true}},
			Message: &waE2E.Message{Conversation: proto.String("x")}}, nil},
		{"group", &events.Message{Info: types.MessageInfo{ID: "B2", MessageSource: types.MessageSource{
			Chat: types.NewJID("1203", types.GroupServer), Sender: phoneJID, IsGroup: true}},
			Message: &waE2E.Message{Conversation: proto.String("x")}}, nil},
		{"reaction", &events.Message{Info: info("B3"), Message: &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Text: proto.String("👍")}}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, c := linkedRig(t)
			if failed := c.emit(tc.evt); failed {
				t.Fatal("handler failed")
			}
			if tc.want == nil {
				if len(r.rec.inbound) != 0 {
					t.Fatalf("forwarded %+v", r.rec.inbound)
				}
				return
			}
			tc.want.Channel, tc.want.SenderName, tc.want.At = "wa", "Kim", at
			if len(r.rec.inbound) != 1 || r.rec.inbound[0] != *tc.want {
				t.Fatalf("accepted %+v, want %+v", r.rec.inbound, *tc.want)
			}
			// The sender is an address Send takes.
			if _, _, err := parseAddress(r.rec.inbound[0].SenderID); err != nil {
				t.Fatalf("SenderID %q is not an address: %v", r.rec.inbound[0].SenderID, err)
			}
		})
	}
}

func TestInboundNotStoredIsNotAcknowledged(t *testing.T) {
	r, c := linkedRig(t)
	r.rec.acceptErr = errors.New("disk full")
	peer := types.NewJID("821012345678", types.DefaultUserServer)
	failed := c.emit(&events.Message{Info: types.MessageInfo{ID: "C1", MessageSource: types.MessageSource{Chat: peer, Sender: peer}},
		Message: &waE2E.Message{Conversation: proto.String("hello")}})
	if !failed {
		t.Fatal("handler reported success for a message the daemon did not store: whatsmeow would ack it")
	}
}

func TestEventsOfAReplacedClientAreIgnored(t *testing.T) {
	r, c := linkedRig(t)
	old := newFakeClient(true)
	if !r.a.handle(old, &events.LoggedOut{}) {
		t.Fatal("handler failed")
	}
	select {
	case s := <-r.rec.sigCh:
		t.Fatalf("signal %+v from a replaced client", s)
	default:
	}
	if err := r.a.Probe(context.Background()); err != nil {
		t.Fatalf("Probe after a stale LoggedOut: %v", err)
	}
	_ = c
}

// Conformance: the fake client in each mode behaves as whatsmeow does (a
// failing server answers the send with an error code, a refused connection
// is ErrNotConnected, a hanging one never acks).
func TestConformance(t *testing.T) {
	var last *fakeClient
	adaptertest.Run(t, adaptertest.Harness{
		Address: owner,
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			r, c := linkedRig(t)
			switch mode {
			case adaptertest.Failing:
				c.mu.Lock()
				c.loggedIn = false
				c.sendErrs = []error{fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 500)}
				c.mu.Unlock()
			case adaptertest.Refusing:
				c.Disconnect()
				c.sendErrs = []error{whatsmeow.ErrNotConnected}
			case adaptertest.Hanging:
				c.block = make(chan struct{})
			}
			last = c
			return r.a
		},
		Delivered: func() int { return last.sentCount() },
	})
}
