package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mau.fi/whatsmeow"

	"github.com/relay-project/relay/relay"
)

// The errors below are the values whatsmeow returns (errors.go, send.go,
// request.go at v0.0.0-20251217143725-11cf47c62d32), wrapped the way its
// call sites wrap them. whatsmeow does not expose wire responses, so these
// Go values are the canned responses.
func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want relay.Kind
	}{
		{"not connected, before the write", whatsmeow.ErrNotConnected, relay.KindTemporary},
		{"no ack within 75s", whatsmeow.ErrMessageTimedOut, relay.KindAmbiguous},
		{"socket dropped after the send", &whatsmeow.DisconnectedError{Action: "message send"}, relay.KindAmbiguous},
		{"socket dropped during the device lookup", fmt.Errorf("failed to get device list: %w", whatsmeow.ErrIQDisconnected), relay.KindTemporary},
		{"info query timed out", fmt.Errorf("failed to get user info for x to fill LID cache: %w", whatsmeow.ErrIQTimedOut), relay.KindTemporary},
		{"attempt deadline", context.DeadlineExceeded, relay.KindAmbiguous},
		{"not logged in", whatsmeow.ErrNotLoggedIn, relay.KindAuth},
		{"usync rate over limit", fmt.Errorf("failed to get user info: %w", &whatsmeow.IQError{Code: 429, Text: "rate-overlimit"}), relay.KindRateLimited},
		{"ack error 429", fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 429), relay.KindRateLimited},
		{"ack error 500", fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 500), relay.KindTemporary},
		{"ack error 4290 is not 429", fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 4290), relay.KindTemporary},
		{"iq not authorized", &whatsmeow.IQError{Code: 401, Text: "not-authorized"}, relay.KindAuth},
		{"iq service unavailable", &whatsmeow.IQError{Code: 503, Text: "service-unavailable"}, relay.KindTemporary},
		{"device JID as recipient", whatsmeow.ErrRecipientADJID, relay.KindPermanent},
		{"unknown server", fmt.Errorf("%w %s", whatsmeow.ErrUnknownServer, "x.us"), relay.KindPermanent},
		{"anything else", errors.New("failed to encrypt"), relay.KindTemporary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := classify(tc.err)
			if e.Kind != tc.want {
				t.Fatalf("classify(%v) = %v, want %v", tc.err, e.Kind, tc.want)
			}
			if !errors.Is(e, tc.err) {
				t.Fatalf("classified error does not wrap %v", tc.err)
			}
		})
	}
	if classify(nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}

// A send error reaches the caller with its kind, through Send.
func TestSendErrorsAreClassified(t *testing.T) {
	r, c := linkedRig(t)
	c.sendErrs = []error{whatsmeow.ErrNotConnected}
	_, err := r.a.Send(context.Background(), out("k", owner, "x"))
	if relay.KindOf(err) != relay.KindTemporary {
		t.Fatalf("Send = %v, want temporary", err)
	}
	// A failing IsOnWhatsApp never sent anything: never ambiguous.
	c2 := newFakeClient(true)
	c2.lookErr = whatsmeow.ErrIQTimedOut
	r2 := newRig(t, Config{}, c2)
	waitConnected(t, c2)
	_, err = r2.a.Send(context.Background(), out("k", owner, "x"))
	if relay.KindOf(err) != relay.KindTemporary || c2.sentCount() != 0 {
		t.Fatalf("Send with a failing lookup = %v (%d sent), want temporary and nothing sent", err, c2.sentCount())
	}
}
