// Package postgres is the shared outbox: relay.Store (and
// relay.ConversationStore) on PostgreSQL through pgx, for several relay
// instances that deliver from one database.
//
// Every write is one transaction, and a method returns after its COMMIT,
// which with synchronous_commit=on (PostgreSQL's default, and enforced here
// when a server or role turned it off) means the WAL record is flushed.
// Concurrent callers use a connection pool; PostgreSQL groups their WAL
// flushes itself, so there is no writer goroutine as in the SQLite store.
//
// Instances share the queue through leases. Claim takes due deliveries
// with SELECT ... FOR UPDATE SKIP LOCKED, so two instances never take the
// same one, and stamps each with this instance's name (claimed_by) and a
// lease (claimed_until = now + Options.Lease, 5 minutes by default). Every
// StartAttempt extends the lease to the attempt's start plus Lease, so a
// live instance renews it for as long as it keeps sending: one send is
// bounded by [delivery] attempt_timeout (10 s) plus rate_limit_wait (5 s),
// far inside 5 minutes. Recover, and a sweep every Options.Sweep, requeue
// only deliveries whose lease has passed (their instance died or hung) or
// that carry this instance's own name (a previous run of it, since Recover
// runs before this run claims): another live instance's work is never
// taken. Settle changes a delivery only while this instance still holds
// it, so an instance that lost its lease cannot overwrite the new owner.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/relay-project/relay/relay"
)

// DefaultLease is how long a claim stays with its instance without a new
// attempt before another instance may requeue it.
const DefaultLease = 5 * time.Minute

// Options tune the store. The zero value is the production default.
type Options struct {
	// Instance names this relay instance in claimed_by. It must be unique
	// among the instances sharing the database. A stable name (a host name)
	// lets a restarted instance requeue its own interrupted work at once;
	// "" means a random name, whose claims are requeued when the lease ends.
	Instance string
	// Lease is how long a claim (or the latest attempt on it) keeps a
	// delivery with this instance; 0 means DefaultLease.
	Lease time.Duration
	// Sweep is how often this store requeues deliveries whose lease passed,
	// so that the work of an instance that died is not left until the next
	// instance start. 0 means Lease/5; negative turns the sweep off.
	Sweep time.Duration
	// MaxConns caps the pool; 0 keeps pool_max_conns from the DSN, or 16.
	MaxConns int32
	// Logger receives migration and sweep notes; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the sweep and of Cancel, whose callers pass no
	// time; nil means time.Now.
	Now func() time.Time

	swept func(n int) // tests: called after each sweep
}

// Store is relay.Store on PostgreSQL. Create it with Open.
type Store struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	now      func() time.Time
	instance string
	lease    time.Duration

	swept     func(int)
	closed    atomic.Bool
	stopSweep context.CancelFunc
	sweeps    sync.WaitGroup
	once      sync.Once
}

var (
	_ relay.Store             = (*Store)(nil)
	_ relay.ConversationStore = (*Store)(nil)
)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), brings its schema up to date and starts the lease sweep. Close
// releases it. Errors never contain the DSN's password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err) // pgconn redacts the password
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = 16
	}
	cfg.AfterConnect = requireSyncCommit
	s := &Store{log: opts.Logger, now: opts.Now, instance: opts.Instance, lease: opts.Lease, swept: opts.swept}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.instance == "" {
		s.instance = randomInstance()
	}
	if s.lease <= 0 {
		s.lease = DefaultLease
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, s.pool, s.log); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	sweep := opts.Sweep
	if sweep == 0 {
		sweep = s.lease / 5
	}
	sctx, cancel := context.WithCancel(context.Background())
	s.stopSweep = cancel
	if sweep > 0 {
		s.sweeps.Add(1)
		go s.sweep(sctx, sweep)
	}
	return s, nil
}

// requireSyncCommit turns synchronous_commit back on for relay's sessions
// when the server, database or role set it off: an acknowledged write must
// be on disk. Stronger settings (remote_apply, ...) are left alone.
func requireSyncCommit(ctx context.Context, c *pgx.Conn) error {
	var v string
	if err := c.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
		return err
	}
	if v == "off" {
		_, err := c.Exec(ctx, `SET synchronous_commit = on`)
		return err
	}
	return nil
}

func randomInstance() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	if host == "" {
		host = "relay"
	}
	return host + "-" + hex.EncodeToString(b)
}

// Instance returns the name this store writes into claimed_by.
func (s *Store) Instance() string { return s.instance }

// sweep requeues expired leases every interval until ctx ends.
func (s *Store) sweep(ctx context.Context, every time.Duration) {
	defer s.sweeps.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.requeue(ctx, s.now(), false)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("requeue deliveries with an expired lease", "err", err)
		case n > 0:
			s.log.Warn("requeued deliveries whose instance's lease expired", "count", n)
		}
		if s.swept != nil {
			s.swept(n)
		}
	}
}

// Close stops the sweep, waits for the operations in progress to return
// their connections, and closes the pool. Calls after Close get
// relay.ErrClosed.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.stopSweep()
		s.sweeps.Wait()
		s.pool.Close()
	})
	return nil
}

// Ping reports whether the store is open and the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.alive(); err != nil {
		return err
	}
	return s.pool.Ping(ctx)
}

func (s *Store) alive() error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %w", relay.ErrClosed)
	}
	return nil
}

// querier is the pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// write runs fn in a read-committed transaction and commits. A deadlock or
// serialization failure (two instances updating overlapping rows in
// another order) rolls back and runs fn again, a few times.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := s.alive(); err != nil {
		return err
	}
	var err error
	for try := 0; try < 4; try++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			return err
		}
	}
	return err
}

// read runs fn in one repeatable-read, read-only transaction, so a message,
// its deliveries and their attempts come from one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := s.alive(); err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func retryable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40001" || pg.Code == "40P01")
}

// notFound turns pgx.ErrNoRows into relay.ErrNotFound naming what is missing.
func notFound(err error, what, id string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", what, id, relay.ErrNotFound)
	}
	return err
}
