// Package sqlite is the embedded outbox: relay.Store on one SQLite file
// (modernc.org/sqlite, pure Go), in WAL mode with group commit.
//
// One writer goroutine owns the only write connection. Every write is
// queued to it; it runs whatever is waiting (up to maxBatch operations) in
// one BEGIN IMMEDIATE ... COMMIT, each operation inside its own SAVEPOINT so
// that a failing one fails alone, and answers the callers only after COMMIT
// returned. With synchronous=FULL one fsync then makes a whole batch
// durable, which is what lets many concurrent submitters go far beyond the
// disk's fsync rate. Reads go to a separate pool of read-only connections.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/relay-project/relay/relay"
)

// Options tune the store. The zero value is the durable default.
type Options struct {
	// Synchronous is SQLite's synchronous setting: "FULL" (default; an
	// acknowledged write survives a power cut) or "NORMAL" (survives a
	// process crash, may lose the last commits on power loss).
	Synchronous string
	// Logger receives migration notes; nil discards them.
	Logger *slog.Logger
	// Now is the clock for the one write whose caller passes no time
	// (Cancel's updated_at); nil means time.Now.
	Now func() time.Time
	// ReadConns is the size of the read pool; 0 means 4.
	ReadConns int
}

// Store is relay.Store on SQLite. Create it with Open.
type Store struct {
	log  *slog.Logger
	now  func() time.Time
	rdb  *sql.DB // read pool
	wdb  *sql.DB // holds the single write connection
	w    *writer
	once sync.Once
	cerr error
}

var _ relay.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path, brings its schema up
// to date and starts the writer. Close releases it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	sync := strings.ToUpper(opts.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: synchronous %q: want FULL or NORMAL", opts.Synchronous)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	reads := opts.ReadConns
	if reads <= 0 {
		reads = 4
	}

	wdb, err := sql.Open("sqlite", dsn(path, sync, "immediate", false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, wdb, len(migrations), log); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	w, err := startWriter(ctx, wdb)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}

	// Readers run deferred transactions: BEGIN IMMEDIATE would take the
	// write lock and queue them behind the writer.
	rdb, err := sql.Open("sqlite", dsn(path, sync, "deferred", true))
	if err == nil {
		rdb.SetMaxOpenConns(reads)
		rdb.SetMaxIdleConns(reads)
		err = rdb.PingContext(ctx)
	}
	if err != nil {
		w.close()
		wdb.Close()
		if rdb != nil {
			rdb.Close()
		}
		return nil, fmt.Errorf("sqlite: open read pool %s: %w", path, err)
	}
	return &Store{log: log, now: now, rdb: rdb, wdb: wdb, w: w}, nil
}

// dsn follows reliability-anchors §4: busy_timeout first, WAL, the chosen
// synchronous level, foreign keys, and the transaction lock mode.
func dsn(path, sync, txlock string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	// Each op's SAVEPOINT journals the pages it touches; in memory that is a
	// copy, on disk (the default) a write syscall per page.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	q.Set("_txlock", txlock)
	return "file:" + path + "?" + q.Encode()
}

// Close waits for queued writes to commit, stops the writer and closes the
// database. Writes submitted after Close get relay.ErrClosed.
func (s *Store) Close() error {
	s.once.Do(func() {
		werr := s.w.close()
		s.cerr = errors.Join(werr, s.wdb.Close(), s.rdb.Close())
	})
	return s.cerr
}

// Ping reports whether the writer runs and the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.alive(); err != nil {
		return err
	}
	var n int
	return s.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&n)
}

// readTx runs fn in one read transaction, so a message and its deliveries
// come from the same snapshot.
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	if err := s.w.alive(); err != nil {
		return err
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// Message returns one message with its deliveries and attempts.
func (s *Store) Message(ctx context.Context, id string) (*relay.Message, error) {
	var m *relay.Message
	err := s.readTx(ctx, func(q querier) (err error) {
		m, err = loadMessage(ctx, q, id)
		return err
	})
	return m, err
}

// Messages returns a page of messages, newest (highest ID) first. IDs are
// ULIDs, so ID order is creation order. Limit defaults to 50 and is capped
// at maxPage.
func (s *Store) Messages(ctx context.Context, f relay.MessageFilter) ([]*relay.Message, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, maxPage)
	var where []string
	var args []any
	switch f.Status {
	case "":
	case relay.MessageStatus(relay.StateQueued), relay.MessageStatus(relay.StateSending):
		// A queued message has a queued delivery, a sending one a sending
		// delivery: deliveries_due finds them (there is no status index
		// for messages that have not ended).
		where = append(where, "status = ? AND id IN (SELECT message_id FROM deliveries WHERE state = ?)")
		args = append(args, string(f.Status), string(f.Status))
	default:
		// The second term, verbatim the WHERE of the partial index
		// messages_ended, lets SQLite use it.
		where = append(where, "status = ? AND status NOT IN ('queued', 'sending')")
		args = append(args, string(f.Status))
	}
	if f.Submitter != "" {
		where, args = append(where, "submitter = ?"), append(args, f.Submitter)
	}
	if f.Before != "" {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	query := `SELECT ` + messageCols + ` FROM messages`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var out []*relay.Message
	err := s.readTx(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		return loadDeliveries(ctx, q, out)
	})
	return out, err
}

// Counts returns the number of deliveries in each state; every state is
// present, zero when none.
func (s *Store) Counts(ctx context.Context) (map[relay.DeliveryState]int, error) {
	out := map[relay.DeliveryState]int{}
	for _, st := range allStates {
		out[st] = 0
	}
	if err := s.w.alive(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT state, count(*) FROM deliveries GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[relay.DeliveryState(st)] = n
	}
	return out, rows.Err()
}

// maxPage bounds a Messages page (its IDs are bound as query parameters).
const maxPage = 1000

var allStates = []relay.DeliveryState{relay.StateQueued, relay.StateSending, relay.StateDelivered,
	relay.StateExpired, relay.StateFailed, relay.StateCancelled}

// ChannelState returns the durable key/value space of one channel.
func (s *Store) ChannelState(channel string) relay.StateStore {
	return channelState{s: s, channel: channel}
}

type channelState struct {
	s       *Store
	channel string
}

// Get returns the value stored under key for this channel.
func (c channelState) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := c.s.w.alive(); err != nil {
		return nil, false, err
	}
	var v []byte
	err := c.s.rdb.QueryRowContext(ctx, `SELECT value FROM channel_state WHERE channel = ? AND key = ?`,
		c.channel, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Put stores value under key for this channel, replacing any old value.
func (c channelState) Put(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return c.s.w.do(ctx, func(t *wtx) error {
		_, err := t.st.putState.Exec(c.channel, key, value)
		return err
	})
}
