package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/store/storetest"
)

func openTemp(t *testing.T) relay.Store {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openTemp)
}

func TestConformanceNormal(t *testing.T) {
	if testing.Short() {
		t.Skip("synchronous=NORMAL repeats the suite")
	}
	storetest.Run(t, func(t *testing.T) relay.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"), Options{Synchronous: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenRejectsUnknownSynchronous(t *testing.T) {
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"), Options{Synchronous: "OFF"})
	if err == nil {
		t.Fatal("Open with synchronous=OFF succeeded; only FULL and NORMAL keep acknowledged writes")
	}
}

func TestPragmas(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1",
		"busy_timeout": "5000", "query_only": "1"} {
		var got string
		if err := s.rdb.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.T0
	m := &relay.Message{ID: "01MREOPEN", Text: "kept", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
		Submitter: "ci", IdempotencyKey: "k", RequestHash: "h",
		Deliveries: []*relay.Delivery{{ID: "01DREOPEN", Contact: "owner", NextAt: t0,
			Route: []relay.Hop{{Channel: "telegram", Address: "1"}}}}}
	if _, _, err := s.Submit(ctx, m); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(ctx, t0, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %v, %v", ds, err)
	}
	if _, err := s.StartAttempt(ctx, relay.Attempt{DeliveryID: ds[0].ID, Channel: "telegram", At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.ChannelState("telegram").Put(ctx, "offset", []byte("7")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "kept" || len(got.Deliveries) != 1 || got.Deliveries[0].State != relay.StateSending ||
		len(got.Deliveries[0].Attempts) != 1 {
		t.Fatalf("after reopen: %+v", got)
	}
	if n, err := s.Recover(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("Recover after reopen = %d, %v; want 1", n, err)
	}
	if _, created, err := s.Submit(ctx, &relay.Message{ID: "01MREOPEN2", CreatedAt: t0, Submitter: "ci",
		IdempotencyKey: "k", RequestHash: "h"}); err != nil || created {
		t.Errorf("idempotency key forgotten across reopen: created=%v err=%v", created, err)
	}
	if v, ok, err := s.ChannelState("telegram").Get(ctx, "offset"); err != nil || !ok || string(v) != "7" {
		t.Errorf("channel state after reopen = %q %v %v", v, ok, err)
	}
}

// TestMigrateFromVersion1 builds a database as the first schema version
// left it, with data, and checks Open brings it up to date: the status
// column the second step adds is filled from the existing deliveries.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	db, err := sql.Open("sqlite", dsn(path, "FULL", "immediate", false))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, 1, discard()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO messages VALUES ('01MA', 'message', '', 'a', '', 1, 2, '', NULL, '', '')`,
		`INSERT INTO messages VALUES ('01MB', 'message', '', 'b', '', 1, 2, '', NULL, '', '')`,
		`INSERT INTO deliveries VALUES ('01DA1', '01MA', 'x', '[]', 0, 'delivered', 'telegram', 0, 0, 2, 1, '')`,
		`INSERT INTO deliveries VALUES ('01DA2', '01MA', 'y', '[]', 0, 'failed', 'email', 0, 0, 2, 1, '')`,
		`INSERT INTO deliveries VALUES ('01DB1', '01MB', 'x', '[]', 0, 'queued', '', 0, 1, 2, 1, '')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	if err := s.rdb.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("user_version = %d (%v), want %d", version, err, len(migrations))
	}
	for status, want := range map[relay.MessageStatus]string{relay.StatusPartial: "01MA", "queued": "01MB"} {
		page, err := s.Messages(ctx, relay.MessageFilter{Status: status})
		if err != nil || len(page) != 1 || page[0].ID != want {
			t.Errorf("Messages(status %s) = %v, %v; want %s", status, page, err, want)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	db, err := sql.Open("sqlite", dsn(path, "FULL", "immediate", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(context.Background(), path, Options{}); err == nil {
		s.Close()
		t.Fatal("Open accepted a schema newer than it knows")
	}
}

// TestFailingOpFailsAlone checks group commit isolation: in one batch, a
// submit that violates a constraint is rolled back to its savepoint while
// the others in the same transaction commit.
func TestFailingOpFailsAlone(t *testing.T) {
	ctx := context.Background()
	st := openTemp(t).(*Store)
	defer st.Close()
	ok1 := &relay.Message{ID: "01MOK1", Deliveries: []*relay.Delivery{{ID: "01DOK1"}}}
	// Its second delivery reuses an ID, after the message row went in.
	bad := &relay.Message{ID: "01MBAD", Deliveries: []*relay.Delivery{{ID: "01DBAD"}, {ID: "01DBAD"}}}
	ok2 := &relay.Message{ID: "01MOK2", Deliveries: []*relay.Delivery{{ID: "01DOK2"}}}

	// Hold the writer inside an op so the three queue up into one batch.
	queued := make(chan struct{}, 4)
	st.w.queued = func() { queued <- struct{}{} }
	release := make(chan struct{})
	held := make(chan struct{})
	go st.w.do(ctx, func(*wtx) error { close(held); <-release; return nil })
	<-held
	<-queued
	errs := make(chan error, 3)
	for _, m := range []*relay.Message{ok1, bad, ok2} {
		go func() { _, _, err := st.Submit(ctx, m); errs <- err }()
	}
	for range 3 {
		<-queued
	}
	close(release)
	var failed int
	for range 3 {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d submits failed, want exactly the bad one", failed)
	}
	for _, id := range []string{"01MOK1", "01MOK2"} {
		if _, err := st.Message(ctx, id); err != nil {
			t.Errorf("Message(%s): %v", id, err)
		}
	}
	if _, err := st.Message(ctx, "01MBAD"); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("the failed submit left its message row: err = %v", err)
	}
}
