package whatsapp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"

	"github.com/relay-project/relay/relay"
)

// fakeClient stands in for *whatsmeow.Client. It behaves as client's doc
// comments (taken from whatsmeow's client.go, send.go, qrchan.go) describe.
type fakeClient struct {
	mu        sync.Mutex
	id        *types.JID
	connected bool
	loggedIn  bool
	handlers  map[uint32]func(any) bool
	nextID    uint32
	connects  int
	dials     chan struct{} // one value per Connect

	sendErrs []error // returned by SendMessage in order, then nil
	sent     []sentMsg
	block    chan struct{} // when set, SendMessage waits for it or ctx

	onWA    map[string]bool // "+digits" → on WhatsApp
	lookups int
	lookErr error

	qr        chan whatsmeow.QRChannelItem
	pairPhone string
	pairCode  string

	logoutErr error
	loggedOut bool
	forgotten bool
}

type sentMsg struct {
	to   types.JID
	text string
	id   types.MessageID
}

func newFakeClient(linked bool) *fakeClient {
	f := &fakeClient{handlers: map[uint32]func(any) bool{}, onWA: map[string]bool{}, dials: make(chan struct{}, 16)}
	if linked {
		f.id = &types.JID{User: "821099990000", Server: types.DefaultUserServer, Device: 7}
	}
	return f
}

func (f *fakeClient) Connect(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	f.connected = true
	f.dials <- struct{}{}
	return nil
}

func (f *fakeClient) Disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected, f.loggedIn = false, false
}

func (f *fakeClient) IsConnected() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.connected }
func (f *fakeClient) IsLoggedIn() bool  { f.mu.Lock(); defer f.mu.Unlock(); return f.loggedIn }
func (f *fakeClient) ID() *types.JID    { f.mu.Lock(); defer f.mu.Unlock(); return f.id }

func (f *fakeClient) SendMessage(ctx context.Context, to types.JID, msg *waE2E.Message, extra whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error) {
	f.mu.Lock()
	block := f.block
	f.sent = append(f.sent, sentMsg{to: to, text: msg.GetConversation(), id: extra.ID})
	var err error
	if len(f.sendErrs) > 0 {
		err, f.sendErrs = f.sendErrs[0], f.sendErrs[1:]
	}
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return whatsmeow.SendResponse{}, ctx.Err()
		}
	}
	if err != nil {
		return whatsmeow.SendResponse{}, err
	}
	return whatsmeow.SendResponse{ID: extra.ID, Timestamp: time.Unix(1700000000, 0)}, nil
}

func (f *fakeClient) IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.lookErr != nil {
		return nil, f.lookErr
	}
	var out []types.IsOnWhatsAppResponse
	for _, p := range phones {
		out = append(out, types.IsOnWhatsAppResponse{
			Query: p, IsIn: f.onWA[p], JID: types.NewJID(p[1:], types.DefaultUserServer),
		})
	}
	return out, nil
}

func (f *fakeClient) GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.connected {
		return nil, whatsmeow.ErrQRAlreadyConnected
	}
	if f.id != nil {
		return nil, whatsmeow.ErrQRStoreContainsID
	}
	f.qr = make(chan whatsmeow.QRChannelItem, 8)
	return f.qr, nil
}

func (f *fakeClient) PairPhone(ctx context.Context, phone string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return "", whatsmeow.ErrNotConnected
	}
	f.pairPhone = phone
	return f.pairCode, nil
}

func (f *fakeClient) Logout(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logoutErr != nil {
		return f.logoutErr
	}
	f.loggedOut, f.id, f.connected, f.loggedIn = true, nil, false, false
	return nil
}

func (f *fakeClient) Forget(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten, f.id, f.connected, f.loggedIn = true, nil, false, false
	return nil
}

func (f *fakeClient) AddEventHandler(h func(any) bool) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.handlers[f.nextID] = h
	return f.nextID
}

func (f *fakeClient) RemoveEventHandler(id uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.handlers[id]
	delete(f.handlers, id)
	return ok
}

// emit dispatches evt as whatsmeow's dispatchEvent does: every handler, and
// "failed" when one returns false.
func (f *fakeClient) emit(evt any) (handlerFailed bool) {
	f.mu.Lock()
	hs := make([]func(any) bool, 0, len(f.handlers))
	for _, h := range f.handlers {
		hs = append(hs, h)
	}
	f.mu.Unlock()
	for _, h := range hs {
		if !h(evt) {
			return true
		}
	}
	return false
}

// login is what happens after a successful connect of a linked device.
func (f *fakeClient) login() {
	f.mu.Lock()
	f.connected, f.loggedIn = true, true
	f.mu.Unlock()
}

func (f *fakeClient) sentCount() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.sent) }

// fakeBackend hands out the fake clients in order; the last one repeats.
type fakeBackend struct {
	mu      sync.Mutex
	clients []*fakeClient
	handed  int
	closed  bool
}

func (b *fakeBackend) Client(ctx context.Context) (client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.clients) == 0 {
		return nil, errors.New("no client")
	}
	i := min(b.handed, len(b.clients)-1)
	b.handed++
	return b.clients[i], nil
}

func (b *fakeBackend) Close() error { b.mu.Lock(); defer b.mu.Unlock(); b.closed = true; return nil }

// recorder is the daemon side of relay.Env.
type recorder struct {
	mu        sync.Mutex
	signals   []relay.HealthSignal
	sigCh     chan relay.HealthSignal
	inbound   []relay.InboundMessage
	acceptErr error
	receipts  []receiptCall
}

type receiptCall struct {
	channel, id string
	kind        relay.ReceiptKind
	at          time.Time
}

func newRecorder() *recorder { return &recorder{sigCh: make(chan relay.HealthSignal, 64)} }

func (r *recorder) Accept(ctx context.Context, m relay.InboundMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acceptErr != nil {
		return r.acceptErr
	}
	r.inbound = append(r.inbound, m)
	return nil
}

func (r *recorder) Receipt(ctx context.Context, channel, id string, kind relay.ReceiptKind, at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.receipts = append(r.receipts, receiptCall{channel, id, kind, at})
	return nil
}

func (r *recorder) signal(s relay.HealthSignal) {
	r.mu.Lock()
	r.signals = append(r.signals, s)
	r.mu.Unlock()
	r.sigCh <- s
}

// next waits for the next health signal.
func (r *recorder) next(t *testing.T) relay.HealthSignal {
	t.Helper()
	select {
	case s := <-r.sigCh:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no health signal")
		return relay.HealthSignal{}
	}
}

// clock is an injected clock for pacing decisions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type rig struct {
	a   *Adapter
	be  *fakeBackend
	rec *recorder
	clk *clock
}

// newRig builds an adapter over fake clients and starts it; it returns once
// the session store is "open".
func newRig(t *testing.T, cfg Config, clients ...*fakeClient) *rig {
	t.Helper()
	s, errs := cfg.settings()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rec := newRecorder()
	clk := &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	be := &fakeBackend{clients: clients}
	env := fillEnv(relay.Env{Name: "wa", Inbound: rec, Receipts: rec, Signal: rec.signal, Now: clk.now})
	a := newAdapter(s, env, func(ctx context.Context) (backend, error) { return be, nil })
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	<-a.ready
	return &rig{a: a, be: be, rec: rec, clk: clk}
}

// waitConnected waits until the supervisor has dialled c.
func waitConnected(t *testing.T, c *fakeClient) {
	t.Helper()
	select {
	case <-c.dials:
	case <-time.After(5 * time.Second):
		t.Fatal("supervisor did not connect")
	}
}
