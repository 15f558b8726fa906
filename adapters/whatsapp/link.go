package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/relay-project/relay/relay"
)

// Link pairs a new device, as WhatsApp Web does: it connects and streams
// QR codes as whatsmeow issues them (the first is valid 60 s, the next ones
// 20 s each, about 160 s in all), or, with a phone number, one pairing code
// to type into the phone. It ends with "success" and the account, or
// "error", and closes the channel. Cancelling ctx aborts the pairing.
func (a *Adapter) Link(ctx context.Context, phone string) (<-chan relay.LinkEvent, error) {
	if phone != "" {
		digits, err := normalisePhone(phone)
		if err != nil {
			return nil, fmt.Errorf("whatsapp: %w", err)
		}
		phone = digits
	}
	select {
	case <-a.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	a.mu.Lock()
	switch {
	case a.closed:
		a.mu.Unlock()
		return nil, relay.ErrClosed
	case a.openErr != nil:
		a.mu.Unlock()
		return nil, fmt.Errorf("whatsapp: session store: %w", a.openErr)
	case a.linking:
		a.mu.Unlock()
		return nil, errors.New("whatsapp: linking is already in progress")
	case a.cli.ID() != nil:
		account := accountOf(a.cli.ID())
		a.mu.Unlock()
		return nil, fmt.Errorf("whatsapp: already linked to %s; unlink first", account)
	}
	a.linking = true
	old, be, runCtx := a.cli, a.be, a.runCtx
	a.mu.Unlock()

	cli, err := a.startPairing(ctx, old, be, runCtx)
	if err != nil {
		a.mu.Lock()
		a.linking = false
		a.mu.Unlock()
		return nil, err
	}
	qr, err := cli.GetQRChannel(ctx)
	if err == nil {
		// The connection outlives this request: once linked it is the
		// channel's connection.
		err = cli.Connect(runCtx)
	}
	if err != nil {
		cli.Disconnect()
		a.mu.Lock()
		a.linking = false
		a.mu.Unlock()
		return nil, relay.Errorf(relay.KindTemporary, "whatsapp: start pairing: %w", err)
	}
	out := make(chan relay.LinkEvent, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		// Close is waiting for the goroutines it knows of; add none.
		cli.Disconnect()
		a.linking = false
		return nil, relay.ErrClosed
	}
	a.wg.Go(func() { a.pair(ctx, runCtx, cli, qr, phone, out) })
	return out, nil
}

// startPairing replaces the client with one for a fresh device: after a
// logout the old device's keys are spent, and an aborted pairing leaves its
// client in an unknown state.
func (a *Adapter) startPairing(ctx context.Context, old client, be backend, runCtx context.Context) (client, error) {
	if runCtx == nil {
		return nil, errors.New("whatsapp: not started")
	}
	old.Disconnect()
	cli, err := be.Client(ctx)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, relay.ErrClosed
	}
	a.setClientLocked(cli)
	return cli, nil
}

// pair turns whatsmeow's QR channel items into LinkEvents.
func (a *Adapter) pair(ctx, runCtx context.Context, cli client, qr <-chan whatsmeow.QRChannelItem, phone string, out chan<- relay.LinkEvent) {
	defer close(out)
	linked := false
	defer func() {
		if !linked {
			// Stop the pairing socket; the device stays unlinked.
			cli.Disconnect()
		}
		a.mu.Lock()
		a.linking = false
		a.mu.Unlock()
	}()
	emit := func(ev relay.LinkEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
		case <-runCtx.Done():
		}
		return false
	}
	fail := func(format string, args ...any) {
		emit(relay.LinkEvent{Kind: "error", Error: fmt.Sprintf(format, args...)})
	}
	codeSent := false
	for {
		var item whatsmeow.QRChannelItem
		var ok bool
		select {
		case item, ok = <-qr:
		case <-ctx.Done():
			return
		case <-runCtx.Done():
			fail("relay is shutting down")
			return
		}
		if !ok {
			if ctx.Err() == nil {
				fail("pairing ended without a result")
			}
			return
		}
		switch item.Event {
		case whatsmeow.QRChannelEventCode:
			if phone == "" {
				if !emit(relay.LinkEvent{Kind: "qr", Code: item.Code}) {
					return
				}
				continue
			}
			if codeSent {
				continue
			}
			code, err := cli.PairPhone(ctx, phone)
			if err != nil {
				fail("could not get a pairing code for %s: %v", displayPhone(phone), err)
				return
			}
			codeSent = true
			if !emit(relay.LinkEvent{Kind: "code", Code: code}) {
				return
			}
		case whatsmeow.QRChannelSuccess.Event:
			linked = true
			a.log.Info("whatsapp pairing succeeded", "account", accountOf(cli.ID()))
			emit(relay.LinkEvent{Kind: "success", Account: accountOf(cli.ID())})
			return
		case whatsmeow.QRChannelTimeout.Event:
			fail("pairing timed out: no code was scanned in time; try again")
			return
		case whatsmeow.QRChannelEventError:
			fail("pairing failed: %v", item.Error)
			return
		case whatsmeow.QRChannelClientOutdated.Event:
			fail("WhatsApp refused this client as outdated: upgrade relay")
			return
		case whatsmeow.QRChannelScannedWithoutMultidevice.Event:
			fail("the phone scanned the code without multi-device support: update WhatsApp on the phone and link again")
			return
		default:
			fail("pairing failed: %s", item.Event)
			return
		}
	}
}

// Unlink logs the device out at WhatsApp and deletes the session. When
// WhatsApp cannot be reached the session is still deleted here, and the
// error says to remove the device on the phone.
func (a *Adapter) Unlink(ctx context.Context) error {
	select {
	case <-a.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.mu.Lock()
	cli, openErr, linking := a.cli, a.openErr, a.linking
	a.mu.Unlock()
	switch {
	case openErr != nil:
		return fmt.Errorf("whatsapp: session store: %w", openErr)
	case linking:
		return errors.New("whatsapp: linking is in progress")
	case cli.ID() == nil:
		return nil
	}
	account := accountOf(cli.ID())
	logoutErr := cli.Logout(ctx)
	if logoutErr != nil {
		if err := cli.Forget(ctx); err != nil {
			return fmt.Errorf("whatsapp: unlink: %w (and deleting the local session failed: %v)", logoutErr, err)
		}
	}
	a.mu.Lock()
	a.down, a.downUntil = "", time.Time{}
	a.lookups = map[string]lookup{}
	a.mu.Unlock()
	a.signal(relay.HealthSignal{Down: true, Reason: reasonNotLinked})
	a.log.Info("whatsapp unlinked", "account", account)
	if logoutErr != nil {
		return fmt.Errorf("whatsapp: the session was deleted here, but WhatsApp was not told (%v): remove \"relay\" under Linked devices on the phone", logoutErr)
	}
	return nil
}

// LinkedAccount returns the linked account as "+<E.164>", or "".
func (a *Adapter) LinkedAccount() string {
	cli := a.current()
	if cli == nil {
		return ""
	}
	return accountOf(cli.ID())
}
