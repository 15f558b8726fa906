package whatsapp

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/relay-project/relay/relay"
)

// collect reads link events until the channel closes.
func collect(t *testing.T, ch <-chan relay.LinkEvent) []relay.LinkEvent {
	t.Helper()
	var got []relay.LinkEvent
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("link events did not end; got %+v", got)
		}
	}
}

// unlinkedRig: the stored device is unlinked; pairing gets a fresh client.
func unlinkedRig(t *testing.T) (*rig, *fakeClient) {
	t.Helper()
	fresh := newFakeClient(false)
	r := newRig(t, Config{}, newFakeClient(false), fresh)
	r.rec.next(t) // not linked
	return r, fresh
}

// pairAs is what whatsmeow does on PairSuccess: the store gets the ID.
func pairAs(c *fakeClient, user string) {
	c.mu.Lock()
	c.id = &types.JID{User: user, Server: types.DefaultUserServer, Device: 12}
	c.mu.Unlock()
}

func TestLinkByQRCode(t *testing.T) {
	r, c := unlinkedRig(t)
	ch, err := r.a.Link(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.connects != 1 {
		t.Fatalf("pairing client connected %d times, want 1", c.connects)
	}
	// whatsmeow's QR channel (qrchan.go): codes as they rotate, then success.
	c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@first", Timeout: 60 * time.Second}
	c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@second", Timeout: 20 * time.Second}
	pairAs(c, "821055550000")
	c.qr <- whatsmeow.QRChannelSuccess
	close(c.qr)
	got := collect(t, ch)
	want := []relay.LinkEvent{{Kind: "qr", Code: "2@first"}, {Kind: "qr", Code: "2@second"}, {Kind: "success", Account: "+821055550000"}}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if r.a.LinkedAccount() != "+821055550000" {
		t.Fatalf("LinkedAccount = %q", r.a.LinkedAccount())
	}
	// whatsmeow reconnects after pairing and reports Connected.
	c.login()
	c.emit(&events.Connected{})
	if s := r.rec.next(t); s.Down {
		t.Fatalf("after linking: %+v, want up", s)
	}
	if _, err := r.a.Link(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "already linked") {
		t.Fatalf("second Link = %v, want already linked", err)
	}
}

func TestLinkByPhoneCode(t *testing.T) {
	r, c := unlinkedRig(t)
	c.pairCode = "ABCD-EFGH"
	ch, err := r.a.Link(context.Background(), "+82 10-5555-0000")
	if err != nil {
		t.Fatal(err)
	}
	c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@qr"}
	c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@qr2"}
	first := <-ch
	if first != (relay.LinkEvent{Kind: "code", Code: "ABCD-EFGH"}) {
		t.Fatalf("first event %+v, want the pairing code", first)
	}
	pairAs(c, "821055550000")
	c.qr <- whatsmeow.QRChannelSuccess
	rest := collect(t, ch)
	if len(rest) != 1 || rest[0].Kind != "success" {
		t.Fatalf("events after the code: %+v, want only success (no QR codes in phone mode)", rest)
	}
	if c.pairPhone != "821055550000" {
		t.Fatalf("PairPhone got %q", c.pairPhone)
	}
	if _, err := r.a.Link(context.Background(), "010-5555-0000"); err == nil {
		t.Fatal("Link with a national number succeeded")
	}
}

func TestLinkTimeoutIsAnError(t *testing.T) {
	r, c := unlinkedRig(t)
	ch, err := r.a.Link(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@a"}
	c.qr <- whatsmeow.QRChannelTimeout
	close(c.qr)
	got := collect(t, ch)
	if len(got) != 2 || got[1].Kind != "error" || !strings.Contains(got[1].Error, "timed out") {
		t.Fatalf("events %+v, want qr then a timeout error", got)
	}
	if c.IsConnected() {
		t.Fatal("the pairing socket was left open")
	}
	// Linking again is possible.
	if _, err := r.a.Link(context.Background(), ""); err != nil {
		t.Fatalf("Link after a timeout: %v", err)
	}
}

func TestLinkCancelled(t *testing.T) {
	r, c := unlinkedRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := r.a.Link(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	collect(t, ch)
	if c.IsConnected() {
		t.Fatal("the pairing socket was left open after the request ended")
	}
	if r.a.LinkedAccount() != "" {
		t.Fatal("linked after cancel")
	}
}

func TestUnlink(t *testing.T) {
	r, c := linkedRig(t)
	if err := r.a.Unlink(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.loggedOut {
		t.Fatal("Logout was not called")
	}
	if s := r.rec.next(t); !s.Down || s.Reason != reasonNotLinked {
		t.Fatalf("after unlink: %+v", s)
	}
	if r.a.LinkedAccount() != "" {
		t.Fatalf("LinkedAccount = %q after unlink", r.a.LinkedAccount())
	}
}

func TestUnlinkOfflineStillForgets(t *testing.T) {
	r, c := linkedRig(t)
	c.logoutErr = whatsmeow.ErrNotConnected
	err := r.a.Unlink(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Linked devices") {
		t.Fatalf("Unlink = %v, want an error telling to remove the device on the phone", err)
	}
	if !c.forgotten || r.a.LinkedAccount() != "" {
		t.Fatal("the local session was kept")
	}
}
