package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/store/storetest"
)

// open opens a store on dsn that is closed when t ends. The sweep is off
// unless opts asks for it: the suite's times are not the wall clock.
func open(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	if opts.Sweep == 0 {
		opts.Sweep = -1
	}
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openFresh(t *testing.T) relay.Store {
	return open(t, newDatabase(t), Options{})
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openFresh)
}

func TestConversationConformance(t *testing.T) {
	storetest.RunConversations(t, openFresh)
}

// TestMigrateConcurrently starts several instances on one new database at
// once: the advisory lock lets one migrate while the others wait, and every
// step is applied exactly once.
func TestMigrateConcurrently(t *testing.T) {
	dsn := newDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	stores := make([]*Store, len(errs))
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), dsn, Options{Sweep: -1})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	var n, max int
	if err := stores[0].pool.QueryRow(context.Background(),
		`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || max != len(migrations) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, max, len(migrations))
	}
	// Reopening finds the schema current and changes nothing.
	again := open(t, dsn, Options{})
	if err := again.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dsn := newDatabase(t)
	s := open(t, dsn, Options{})
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')`,
		len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dsn, Options{Sweep: -1}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open on a newer schema: %v, want a refusal", err)
	}
}

// TestSynchronousCommitKept checks that an acknowledged write is flushed
// even where the database was configured with synchronous_commit=off.
func TestSynchronousCommitKept(t *testing.T) {
	dsn := newDatabase(t)
	s := open(t, dsn, Options{})
	ctx := context.Background()
	var db string
	if err := s.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ALTER DATABASE `+db+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dsn, Options{})
	for range 3 { // several pool connections
		var v string
		if err := s2.pool.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Fatalf("synchronous_commit = %s in relay's session, want on", v)
		}
	}
}

// TestErrorsHideThePassword: a failed connection names no password.
func TestErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://relay:s3cretpw@127.0.0.1:1/relay?connect_timeout=2",
		"host=127.0.0.1 port=1 user=relay password=s3cretpw dbname=relay connect_timeout=2",
		"postgres://relay:s3cretpw@127.0.0.1:1/relay?pool_max_conns=nope",
	} {
		_, err := Open(context.Background(), dsn, Options{Sweep: -1})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestDeriveStatusSQL checks that deriveStatusSQL agrees with
// relay.DeriveStatus on every mix of one to three deliveries.
func TestDeriveStatusSQL(t *testing.T) {
	s := open(t, newDatabase(t), Options{})
	ctx := context.Background()
	var mixes [][]relay.DeliveryState
	var grow func(prefix []relay.DeliveryState)
	grow = func(prefix []relay.DeliveryState) {
		if len(prefix) > 0 {
			mixes = append(mixes, prefix)
		}
		if len(prefix) == 3 {
			return
		}
		for _, st := range allStates {
			grow(append(append([]relay.DeliveryState(nil), prefix...), st))
		}
	}
	grow(nil)
	ids := make([]string, len(mixes))
	for i, mix := range mixes {
		m := &relay.Message{ID: fmt.Sprintf("01M%06d", i), CreatedAt: storetest.T0, ExpiresAt: storetest.T0}
		for j, st := range mix {
			m.Deliveries = append(m.Deliveries, &relay.Delivery{ID: fmt.Sprintf("01D%06d-%d", i, j), State: st})
		}
		if _, _, err := s.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids[i] = m.ID
	}
	if _, err := s.pool.Exec(ctx, `UPDATE messages SET status = 'unknown'`); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := refreshStatus(ctx, tx, ids); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i, mix := range mixes {
		var got string
		if err := s.pool.QueryRow(ctx, `SELECT status FROM messages WHERE id = $1`, ids[i]).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := relay.DeriveStatus(mix); got != string(want) {
			t.Errorf("states %v: SQL status %s, DeriveStatus %s", mix, got, want)
		}
	}
}

// TestStatusUnderConcurrentSettles: deliveries of one message settled at
// the same time by different workers leave the right cached status (each
// transaction re-derives it after the earlier ones committed).
func TestStatusUnderConcurrentSettles(t *testing.T) {
	ctx := context.Background()
	s := open(t, newDatabase(t), Options{})
	const msgs, per = 40, 3
	for i := range msgs {
		m := &relay.Message{ID: fmt.Sprintf("01M%06d", i), CreatedAt: storetest.T0, ExpiresAt: storetest.T0}
		for j := range per {
			m.Deliveries = append(m.Deliveries, &relay.Delivery{ID: fmt.Sprintf("01D%06d-%d", i, j), NextAt: storetest.T0})
		}
		if _, _, err := s.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Claim(ctx, storetest.T0, msgs*per)
	if err != nil || len(ds) != msgs*per {
		t.Fatalf("Claim: %d, %v", len(ds), err)
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Settle(ctx, relay.Settlement{DeliveryID: d.ID, State: relay.StateDelivered,
				Channel: "telegram", At: storetest.T0}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	page, err := s.Messages(ctx, relay.MessageFilter{Status: relay.MessageStatus(relay.StateDelivered), Limit: msgs})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != msgs {
		var stale []string
		s.pool.QueryRow(ctx, `SELECT array_agg(id || ':' || status) FROM messages WHERE status <> 'delivered'`).Scan(&stale)
		t.Fatalf("%d of %d messages have the cached status delivered; stale: %v", len(page), msgs, stale)
	}
}
