package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/relay-project/relay/relay"
)

// pairingAdapter is a channel linked by pairing, like WhatsApp.
type pairingAdapter struct {
	mu      sync.Mutex
	account string
}

func (p *pairingAdapter) Send(context.Context, *relay.Outgoing) (relay.Sent, error) {
	return relay.Sent{}, relay.Errorf(relay.KindAuth, "not linked")
}
func (p *pairingAdapter) Probe(context.Context) error { return errors.New("not linked") }
func (p *pairingAdapter) Close() error                { return nil }
func (p *pairingAdapter) Link(ctx context.Context, phone string) (<-chan relay.LinkEvent, error) {
	ch := make(chan relay.LinkEvent, 4)
	go func() {
		defer close(ch)
		if phone != "" {
			ch <- relay.LinkEvent{Kind: "code", Code: "ABCD-EFGH"}
		} else {
			ch <- relay.LinkEvent{Kind: "qr", Code: "2@first"}
			ch <- relay.LinkEvent{Kind: "qr", Code: "2@second"}
		}
		p.mu.Lock()
		p.account = "+82 10-1234-5678"
		p.mu.Unlock()
		ch <- relay.LinkEvent{Kind: "success", Account: "+82 10-1234-5678"}
	}()
	return ch, nil
}
func (p *pairingAdapter) Unlink(context.Context) error {
	p.mu.Lock()
	p.account = ""
	p.mu.Unlock()
	return nil
}
func (p *pairingAdapter) LinkedAccount() string { p.mu.Lock(); defer p.mu.Unlock(); return p.account }

func init() {
	relay.Register(relay.Factory{Type: "testpairing", NewConfig: func() any { return &struct{}{} },
		New: func(any, relay.Env) (relay.Adapter, error) { return &pairingAdapter{}, nil }})
}

// TestLinkThroughAPI: pairing runs inside the daemon and streams its
// events as NDJSON, so the CLI and the console can show QR codes while
// the daemon holds the only connection; the linked account then shows in
// /v1/channels, and unlink clears it.
func TestLinkThroughAPI(t *testing.T) {
	n := startDaemon(t, "", `
[server]
listen = "127.0.0.1:0"
[store]
path = "%DIR%/relay.db"
[channels.wa]
type = "testpairing"
[contacts.owner]
route = ["wa"]
wa = "+821012345678"
`)
	resp, err := http.Post(n.base+"/v1/channels/wa/link", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	var kinds []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev relay.LinkEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kinds = append(kinds, ev.Kind+":"+ev.Code+ev.Account)
	}
	if got := strings.Join(kinds, " "); got != "qr:2@first qr:2@second success:+82 10-1234-5678" {
		t.Fatalf("events %s", got)
	}
	if r := n.do("GET", "/v1/channels", "", nil); !strings.Contains(string(r.body), `"account":"+82 10-1234-5678"`) {
		t.Fatalf("linked account not shown: %s", r.body)
	}
	if r := n.do("POST", "/v1/channels/wa/unlink", "", nil); r.status != 200 {
		t.Fatalf("unlink: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/v1/channels/nope/link", "", nil); r.status != 404 || r.code() != "unknown_channel" {
		t.Fatalf("unknown channel: %d %s", r.status, r.body)
	}
}
