package relay

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind says what a failed send means for the delivery and for the channel.
// Adapters classify every failure once, where it happens; the dispatcher
// alone turns a Kind into failover, retry, health and metrics.
type Kind int

const (
	// KindTemporary: the channel could not take the message now (network
	// error, timeout before the request was written, 5xx, maintenance).
	// The delivery fails over at once and the channel is blamed.
	KindTemporary Kind = iota + 1
	// KindRateLimited: the upstream asked us to slow down; Error.RetryAfter
	// says for how long (zero when it did not say).
	KindRateLimited
	// KindAuth: the channel's credentials are refused or its quota or
	// login is gone, and the adapter cannot repair it itself. The channel
	// is marked down.
	KindAuth
	// KindPermanent: this recipient cannot be reached on this channel (bad
	// address, bot blocked). The delivery moves on; the channel is not blamed.
	KindPermanent
	// KindInvalid: the message itself cannot be sent on this channel (empty,
	// too large, bad characters). Like KindPermanent for this delivery.
	KindInvalid
	// KindAmbiguous: the request may have reached the upstream (a timeout
	// after it was written). The message may have arrived.
	KindAmbiguous
)

var kindNames = map[Kind]string{
	KindTemporary:   "temporary",
	KindRateLimited: "rate_limited",
	KindAuth:        "auth",
	KindPermanent:   "permanent",
	KindInvalid:     "invalid",
	KindAmbiguous:   "ambiguous",
}

// String returns the snake_case name used in the API and in metrics.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the one error type adapters return from Send and Probe. It
// carries the classification and, for rate limits, how long to wait.
type Error struct {
	Kind       Kind
	RetryAfter time.Duration // KindRateLimited (and KindAuth for quotas): zero means unknown
	Msg        string        // short, human, no secrets: "telegram: 403 bot was blocked by the user"
	Err        error         // the underlying error, if any
}

// Error returns the message; it never contains credentials.
func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Kind.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind with a formatted message. A %w
// verb in format wraps the underlying error as usual.
func Errorf(kind Kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// RateLimited returns a KindRateLimited error asking to wait d.
func RateLimited(d time.Duration, format string, args ...any) *Error {
	e := Errorf(KindRateLimited, format, args...)
	e.RetryAfter = d
	return e
}

// KindOf classifies err. An error without an *Error in its chain is
// temporary, except a context deadline, which is ambiguous: the request may
// have been written before time ran out. A nil error has kind 0.
func KindOf(err error) Kind {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		if e == nil { // a typed nil *Error returned as error: a bug, but not a crash
			return 0
		}
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindAmbiguous
	}
	return KindTemporary
}

// RetryAfterOf returns the retry-after carried by err, or zero.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.RetryAfter
	}
	return 0
}

// Sentinel errors of the domain, for errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrUnknownContact   = errors.New("unknown contact")
	ErrUnknownChannel   = errors.New("unknown channel")
	ErrIdempotencyReuse = errors.New("idempotency key reused with a different request")
	ErrConflict         = errors.New("conflict")
	ErrNoProbe          = errors.New("channel has no active probe")
	ErrClosed           = errors.New("closed")
)
