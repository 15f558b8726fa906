package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

type cliPairing struct{ linked string }

func (p *cliPairing) Send(context.Context, *relay.Outgoing) (relay.Sent, error) {
	return relay.Sent{}, relay.Errorf(relay.KindAuth, "not linked")
}
func (p *cliPairing) Probe(context.Context) error { return errors.New("not linked") }
func (p *cliPairing) Close() error                { return nil }
func (p *cliPairing) Link(ctx context.Context, phone string) (<-chan relay.LinkEvent, error) {
	ch := make(chan relay.LinkEvent, 3)
	if phone != "" {
		ch <- relay.LinkEvent{Kind: "code", Code: "WXYZ-1234"}
	} else {
		ch <- relay.LinkEvent{Kind: "qr", Code: "2@pairing-payload"}
	}
	ch <- relay.LinkEvent{Kind: "success", Account: "+82 10-1234-5678"}
	close(ch)
	return ch, nil
}
func (p *cliPairing) Unlink(context.Context) error { return nil }
func (p *cliPairing) LinkedAccount() string        { return p.linked }

func init() {
	relay.Register(relay.Factory{Type: "clipairing", NewConfig: func() any { return &struct{}{} },
		New: func(any, relay.Env) (relay.Adapter, error) { return &cliPairing{}, nil }})
}

// TestWhatsAppLinkCLI: `relay whatsapp link` shows the daemon's QR code in
// the terminal (or the pairing code with --phone) and ends with the
// linked account.
func TestWhatsAppLinkCLI(t *testing.T) {
	cfgPath, _ := serveInProcess(t, `
[channels.whatsapp]
type = "clipairing"
[contacts.owner]
route = ["whatsapp"]
whatsapp = "+821012345678"
`)

	var out, errOut syncBuffer
	if c := run([]string{"whatsapp", "link", "-c", cfgPath}, nil, &out, &errOut); c != 0 {
		t.Fatalf("link exited %d: %s", c, errOut.String())
	}
	s := out.String()
	if !strings.Contains(s, "Linked devices") || !strings.Contains(s, "Linked: +82 10-1234-5678") {
		t.Fatalf("output:\n%s", s)
	}
	if strings.Count(s, "█")+strings.Count(s, "▀")+strings.Count(s, "▄") < 100 {
		t.Fatalf("no QR code drawn:\n%s", s)
	}
	out = syncBuffer{}
	if c := run([]string{"whatsapp", "link", "-c", cfgPath, "--phone", "+82 10-1234-5678"}, nil, &out, &errOut); c != 0 || !strings.Contains(out.String(), "WXYZ-1234") {
		t.Fatalf("--phone: %d %s", c, out.String())
	}
}
