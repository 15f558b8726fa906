package inboundweb

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/health"
	"github.com/relay-project/relay/relay/inbound"
	"github.com/relay-project/relay/relay/store/sqlite"
	"github.com/relay-project/relay/relay/web"
)

type idle struct{}

func (idle) Send(context.Context, *relay.Outgoing) (relay.Sent, error) { return relay.Sent{}, nil }
func (idle) Probe(context.Context) error                               { return nil }
func (idle) Close() error                                              { return nil }

// TestConsoleConversations checks the console sees what the pipeline
// stored, replies through it, and gets web's errors for what it cannot do.
func TestConsoleConversations(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "relay.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rt := &dispatch.Runtime{Channels: map[string]*dispatch.Channel{
		"line": dispatch.NewChannel("line", "line", idle{}, 1, 0), "kakao": dispatch.NewChannel("kakao", "kakao", idle{}, 1, 0),
	}, Directory: &relay.Directory{Contacts: map[string]*relay.Contact{
		"owner": {Name: "owner", Route: []string{"kakao"}, Addresses: map[string]string{"kakao": "me"}}}}}
	p := inbound.New(inbound.Options{Store: st})
	p.Attach(dispatch.New(st, health.New(health.Options{}), rt, dispatch.Options{}))
	p.SetConfig(inbound.Config{ForwardTo: []string{"owner"}, MaxLength: 100})
	if err := p.Accept(ctx, relay.InboundMessage{Channel: "line", UpstreamID: "e1", SenderID: "U1", SenderName: "김민수", Text: "예약?"}); err != nil {
		t.Fatal(err)
	}
	c := New(p)
	list, err := c.List(ctx, 10)
	if err != nil || len(list) != 1 || list[0].Customer != "김민수" || list[0].State != "open" || list[0].Tag == "" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	mid, err := c.Reply(ctx, list[0].Tag, "네")
	if err != nil || mid == "" {
		t.Fatalf("Reply = %q, %v", mid, err)
	}
	d, err := c.Get(ctx, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "answered" || len(d.Messages) != 2 || d.Messages[0].Direction != web.DirectionIn ||
		d.Messages[0].Status != "received" || d.Messages[1].MessageID != mid || d.Messages[1].Status != "queued" {
		t.Fatalf("Get = %+v", d)
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("Get(unknown): %v", err)
	}
	if err := p.AcceptForm(ctx, "Lee", "+82 10 5555 6666", "hi"); err != nil {
		t.Fatal(err)
	}
	list, _ = c.List(ctx, 10)
	if _, err := c.Reply(ctx, list[0].ID, "yes"); !errors.Is(err, web.ErrCannotReply) {
		t.Fatalf("reply to a form phone contact without SMS: %v, want web.ErrCannotReply", err)
	}
}
