package whatsapp

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", for dialect = "postgres"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"
	_ "modernc.org/sqlite" // driver "sqlite", pure Go
)

// client is the part of *whatsmeow.Client the adapter uses. The real client
// speaks the Noise protocol to a pinned server certificate, so it cannot be
// pointed at a local fake; tests fake this interface instead.
type client interface {
	// Connect dials WhatsApp. ctx bounds the connection's background
	// loops (keep-alive, auto-reconnect), not just the dial.
	Connect(ctx context.Context) error
	Disconnect()
	IsConnected() bool
	IsLoggedIn() bool
	// ID is the linked device's JID, nil while the device is not linked.
	ID() *types.JID
	SendMessage(ctx context.Context, to types.JID, msg *waE2E.Message, extra whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error)
	// IsOnWhatsApp takes numbers with a leading "+".
	IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error)
	// GetQRChannel must be called before Connect on an unlinked device.
	GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error)
	// PairPhone asks for an 8-character pairing code for the phone number
	// (digits); call it after Connect and the first QR item.
	PairPhone(ctx context.Context, phone string) (string, error)
	// Logout unlinks the device at WhatsApp and deletes the session.
	Logout(ctx context.Context) error
	// Forget disconnects and deletes the local session without telling
	// WhatsApp (for when Logout cannot reach it).
	Forget(ctx context.Context) error
	// AddEventHandler registers h; when h returns false whatsmeow does not
	// acknowledge the message, and WhatsApp delivers it again later.
	AddEventHandler(h func(evt any) bool) uint32
	RemoveEventHandler(id uint32) bool
}

// backend is a session store: it hands out clients for its device.
type backend interface {
	// Client returns a client for the stored device, or for a fresh,
	// unlinked device when none is stored (never linked, or logged out).
	Client(ctx context.Context) (client, error)
	Close() error
}

// opener opens the session store; Start calls it off the caller's goroutine.
type opener func(ctx context.Context) (backend, error)

// sqliteDSN is the modernc.org/sqlite address of the session file. whatsmeow
// refuses to upgrade its schema without foreign keys; busy_timeout and WAL
// avoid "database is locked" under whatsmeow's concurrent writes (tulir/
// whatsmeow#838, #505), and immediate transactions stop a reader upgrading
// to a writer from failing at once with SQLITE_BUSY. synchronous(FULL): a
// lost Signal ratchet update means undecryptable messages later.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// sqlOpener opens the session store the settings describe.
func sqlOpener(s settings, log waLog.Logger) opener {
	return func(ctx context.Context) (backend, error) {
		driver, dsn := "sqlite", sqliteDSN(s.session)
		if s.dialect == "postgres" {
			driver, dsn = "pgx", s.dsn
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			return nil, fmt.Errorf("open session store: %w", err)
		}
		if s.dialect == "sqlite" {
			// One writer at a time is all SQLite does anyway; more
			// connections only trade in SQLITE_BUSY waits.
			db.SetMaxOpenConns(4)
		}
		b, err := openSessionDB(ctx, db, s.dialect, log)
		if err != nil {
			db.Close()
			return nil, err
		}
		return b, nil
	}
}

// openSessionDB wraps an open database in whatsmeow's sqlstore and brings
// its schema up to date. dialect is "sqlite" or "postgres". This is the seam
// for keeping the session in the daemon's own PostgreSQL database.
func openSessionDB(ctx context.Context, db *sql.DB, dialect string, log waLog.Logger) (backend, error) {
	if dialect != "sqlite" && dialect != "postgres" {
		return nil, fmt.Errorf("session store: unknown dialect %q", dialect)
	}
	c := sqlstore.NewWithDB(db, dialect, log.Sub("Database"))
	if err := c.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("upgrade session store: %w", err)
	}
	return &sqlBackend{container: c, log: log}, nil
}

type sqlBackend struct {
	container *sqlstore.Container
	log       waLog.Logger
}

func (b *sqlBackend) Client(ctx context.Context) (client, error) {
	dev, err := b.container.GetFirstDevice(ctx)
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	c := whatsmeow.NewClient(dev, b.log.Sub("Client"))
	c.EnableAutoReconnect = true
	// A first dial that fails on the network is retried in the
	// background instead of failing Start's connect.
	c.InitialAutoReconnect = true
	// Acknowledge a message only after our handler returned true (the
	// message is durable in the daemon's store); the decrypted-event buffer
	// lets whatsmeow hand a redelivered message to us again instead of
	// dropping it as an old Signal counter.
	c.SynchronousAck = true
	c.EnableDecryptedEventBuffer = true
	return &waClient{c: c}, nil
}

func (b *sqlBackend) Close() error { return b.container.Close() }

// waClient adapts *whatsmeow.Client to client.
type waClient struct{ c *whatsmeow.Client }

func (w *waClient) Connect(ctx context.Context) error { return w.c.ConnectContext(ctx) }
func (w *waClient) Disconnect()                       { w.c.Disconnect() }
func (w *waClient) IsConnected() bool                 { return w.c.IsConnected() }
func (w *waClient) IsLoggedIn() bool                  { return w.c.IsLoggedIn() }
func (w *waClient) ID() *types.JID                    { return w.c.Store.ID }

func (w *waClient) SendMessage(ctx context.Context, to types.JID, msg *waE2E.Message, extra whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error) {
	return w.c.SendMessage(ctx, to, msg, extra)
}

func (w *waClient) IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error) {
	return w.c.IsOnWhatsApp(ctx, phones)
}

func (w *waClient) GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	return w.c.GetQRChannel(ctx)
}

// pairDisplayName must look like "Browser (OS)": WhatsApp answers 400 to
// anything else (pair-code.go).
const pairDisplayName = "Chrome (Linux)"

func (w *waClient) PairPhone(ctx context.Context, phone string) (string, error) {
	return w.c.PairPhone(ctx, phone, true, whatsmeow.PairClientChrome, pairDisplayName)
}

func (w *waClient) Logout(ctx context.Context) error { return w.c.Logout(ctx) }

func (w *waClient) Forget(ctx context.Context) error {
	w.c.Disconnect()
	if w.c.Store.ID == nil {
		return nil
	}
	return w.c.Store.Delete(ctx)
}

func (w *waClient) AddEventHandler(h func(evt any) bool) uint32 {
	return w.c.AddEventHandlerWithSuccessStatus(h)
}

func (w *waClient) RemoveEventHandler(id uint32) bool { return w.c.RemoveEventHandler(id) }

func init() {
	// The name shown under "Linked devices" on the phone. DeviceProps is
	// whatsmeow's package-level registration payload, read while pairing.
	store.DeviceProps.Os = ptr("relay")
}

func ptr[T any](v T) *T { return &v }
