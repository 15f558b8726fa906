package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/relay-project/relay/relay"
)

// maxBatch bounds one group commit, so a flood of writes still gets answers
// in slices rather than in one huge transaction.
const maxBatch = 256

// While foreground ops wait, a batch takes background ops only up to one
// per backgroundShare foreground ops, and at least minBackground, so the
// dispatcher slows down but never stalls.
const (
	backgroundShare = 8
	minBackground   = 4
)

// op is one queued write. run executes inside the batch transaction and
// stores its results in variables the caller reads after done.
type op struct {
	ctx  context.Context
	run  func(t *wtx) error
	done chan error // buffered: the writer never blocks on a caller
}

// writer owns the write connection and runs queued ops in group commits.
//
// Ops come in two classes. Foreground ops (do) answer a client who is
// waiting: accepting a message, cancelling, retrying. Background ops
// (doBackground) are the dispatcher's bookkeeping: claiming, recording
// attempts, settling. The single writer is the daemon's bottleneck under
// load, and one delivery costs it several times what accepting a message
// does, so while foreground ops wait a batch takes all of them (up to
// maxBatch) and background ops only up to an eighth of their number (at
// least minBackground). During a burst of submissions the dispatcher then
// slows down instead of the clients, and catches up after it: the queue
// is durable, and every accepted message is still delivered. With no
// foreground ops waiting, background ops fill whole batches.
type writer struct {
	conn *sql.Conn
	st   *stmts
	ops  chan *op // foreground
	bg   chan *op // background

	mu     sync.RWMutex // guards closed against sends on a closed ops
	closed bool
	exited chan struct{}

	sole map[string]string // see wtx

	queued  func() // test hook: called after an op is queued
	batches int    // batches run so far; read by ops (on this goroutine) in tests
}

// wtx is what an op sees: the prepared statements and the connection (for
// rare ad-hoc queries), inside the open transaction.
type wtx struct {
	conn *sql.Conn
	st   *stmts
	// sole maps each claimed delivery that is its message's only one to
	// the message, so that Settle knows the message's status without
	// reading its deliveries. A message's deliveries never change after
	// Submit, so an entry is right even if the claim that made it rolled
	// back. Only ops use it, on the writer's goroutine.
	sole map[string]string
}

func startWriter(ctx context.Context, db *sql.DB) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	st, err := prepare(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	w := &writer{conn: conn, st: st, ops: make(chan *op, 4*maxBatch), bg: make(chan *op, 4*maxBatch),
		sole: map[string]string{}, exited: make(chan struct{})}
	go w.loop()
	return w, nil
}

// do queues fn as a foreground op and waits until the batch holding it has
// committed. If ctx ends while fn is queued it is skipped; if it ends after
// fn ran, the write may still commit (the caller sees ctx.Err(), as with
// any lost reply).
func (w *writer) do(ctx context.Context, fn func(t *wtx) error) error {
	return w.queue(ctx, false, fn)
}

// doBackground is do for the dispatcher's bookkeeping, which yields to
// foreground ops (see writer).
func (w *writer) doBackground(ctx context.Context, fn func(t *wtx) error) error {
	return w.queue(ctx, true, fn)
}

func (w *writer) queue(ctx context.Context, background bool, fn func(t *wtx) error) error {
	o := &op{ctx: ctx, run: fn, done: make(chan error, 1)}
	q := w.ops
	if background {
		q = w.bg
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return fmt.Errorf("sqlite: %w", relay.ErrClosed)
	}
	select {
	case q <- o:
		w.mu.RUnlock()
		if w.queued != nil {
			w.queued()
		}
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *writer) loop() {
	defer close(w.exited)
	fg, bg := w.ops, w.bg // nil once closed and drained
	batch := make([]*op, 0, maxBatch)
	for fg != nil || bg != nil {
		batch = batch[:0]
		nbg := 0
		select {
		case o, ok := <-fg:
			if !ok {
				fg = nil
				continue
			}
			batch = append(batch, o)
		case o, ok := <-bg:
			if !ok {
				bg = nil
				continue
			}
			batch, nbg = append(batch, o), 1
		}
		fgOpen := drain(&batch, fg, maxBatch)
		room := maxBatch
		if nfg := len(batch) - nbg; nfg > 0 {
			room = min(maxBatch, nfg+max(minBackground, nfg/backgroundShare))
		}
		bgOpen := drain(&batch, bg, room)
		w.runBatch(batch)
		clear(batch)
		if !fgOpen {
			fg = nil
		}
		if !bgOpen {
			bg = nil
		}
	}
}

// drain appends ops queued on q to batch until it holds limit, without
// waiting. It reports false when q is closed and empty.
func drain(batch *[]*op, q chan *op, limit int) bool {
	if q == nil {
		return false
	}
	for len(*batch) < limit {
		select {
		case o, ok := <-q:
			if !ok {
				return false
			}
			*batch = append(*batch, o)
		default:
			return true
		}
	}
	return true
}

// runBatch runs ops in one transaction and answers each after COMMIT. An op
// that fails must fail alone, so ops really run each inside a SAVEPOINT.
// But savepoints cost (two statements, and a copy of every page an op
// touches), and ops almost never fail; so a batch first runs without them,
// and only if an op fails is it rolled back and run again with them. Ops
// set all their results on every run, so a second run is harmless.
func (w *writer) runBatch(batch []*op) {
	w.batches++
	errs := make([]error, len(batch))
	if !w.try(batch, errs, false) {
		clear(errs)
		w.try(batch, errs, true)
	}
	for i, o := range batch {
		o.done <- errs[i]
	}
}

// try runs batch in one transaction, recording each op's error in errs.
// Without savepoints it gives up (rolls back, returns false) at the first
// failing op of a batch of several; otherwise it returns true with errs
// final: the op's own error, or the transaction's when it did not commit.
func (w *writer) try(batch []*op, errs []error, savepoints bool) bool {
	failAll := func(err error) bool {
		w.rollback()
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return true
	}
	if _, err := w.st.begin.Exec(); err != nil {
		return failAll(fmt.Errorf("sqlite: begin: %w", err))
	}
	t := &wtx{conn: w.conn, st: w.st, sole: w.sole}
	for i, o := range batch {
		if errs[i] = o.ctx.Err(); errs[i] != nil {
			continue
		}
		if !savepoints {
			if errs[i] = o.run(t); errs[i] != nil {
				if len(batch) == 1 {
					// A lone op: rolling back the transaction is its savepoint.
					w.rollback()
					return true
				}
				w.rollback()
				return false
			}
			continue
		}
		if _, err := w.st.savepoint.Exec(); err != nil {
			return failAll(fmt.Errorf("sqlite: savepoint: %w", err))
		}
		if errs[i] = o.run(t); errs[i] != nil {
			if _, err := w.st.rollbackTo.Exec(); err != nil {
				return failAll(fmt.Errorf("sqlite: rollback to savepoint: %w", err))
			}
		}
		if _, err := w.st.release.Exec(); err != nil {
			return failAll(fmt.Errorf("sqlite: release savepoint: %w", err))
		}
	}
	if _, err := w.st.commit.Exec(); err != nil {
		return failAll(fmt.Errorf("sqlite: commit: %w", err))
	}
	return true
}

// rollback ends a failed transaction; its error only repeats the one that
// got us here (SQLite may already have rolled back on its own).
func (w *writer) rollback() {
	w.st.rollback.Exec()
}

// alive reports relay.ErrClosed once the writer stopped.
func (w *writer) alive() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return fmt.Errorf("sqlite: %w", relay.ErrClosed)
	}
	return nil
}

// close refuses new ops, lets the queued ones commit, then releases the
// statements and the connection.
func (w *writer) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
		close(w.bg)
	}
	w.mu.Unlock()
	<-w.exited
	return errors.Join(w.st.close(), w.conn.Close())
}
