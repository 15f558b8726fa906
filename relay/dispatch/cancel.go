package dispatch

import (
	"context"
	"errors"
)

// errCancelled is the cause of a delivery's context when its message is
// cancelled while the dispatcher works on it.
var errCancelled = errors.New("message cancelled")

// inflight is a delivery a worker is processing.
type inflight struct {
	messageID string
	cancel    context.CancelCauseFunc
}

// track gives a claimed delivery its own context, so that cancelling its
// message stops the pass (no failover to the next channel) and cuts a
// send short.
func (d *Dispatcher) track(ctx context.Context, del *deliveryRef) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	d.inflight.Store(del.id, &inflight{messageID: del.messageID, cancel: cancel})
	return cctx, func() {
		d.inflight.Delete(del.id)
		cancel(nil)
	}
}

type deliveryRef struct{ id, messageID string }

// Cancel cancels a message: its deliveries that have not ended are
// cancelled in the store, and any pass in progress on them stops.
func (d *Dispatcher) Cancel(ctx context.Context, messageID string) error {
	if err := d.store.Cancel(ctx, messageID); err != nil {
		return err
	}
	d.inflight.Range(func(_, v any) bool {
		if in := v.(*inflight); in.messageID == messageID {
			in.cancel(errCancelled)
		}
		return true
	})
	return nil
}

// cancelled reports whether ctx ended because the message was cancelled.
func cancelled(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errCancelled)
}
