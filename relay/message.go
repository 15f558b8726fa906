package relay

import "time"

// DeliveryState is where one delivery (one message to one contact) stands.
type DeliveryState string

// Delivery states, as SPEC names them.
const (
	StateQueued    DeliveryState = "queued"
	StateSending   DeliveryState = "sending"
	StateDelivered DeliveryState = "delivered"
	StateExpired   DeliveryState = "expired"
	StateFailed    DeliveryState = "failed"
	StateCancelled DeliveryState = "cancelled"
)

// Final reports whether the state is an end state.
func (s DeliveryState) Final() bool {
	switch s {
	case StateDelivered, StateExpired, StateFailed, StateCancelled:
		return true
	}
	return false
}

// MessageStatus is derived from the states of a message's deliveries.
type MessageStatus string

// StatusPartial is the message status when every delivery has ended and
// only some were delivered; the other statuses share the delivery states'
// names.
const StatusPartial MessageStatus = "partial"

// DeriveStatus returns a message's status from its deliveries' states, per
// SPEC: delivered when all are; partial when all ended and some were
// delivered; expired/failed/cancelled when all ended and none was (the most
// common end state wins, ties in that order); else sending when any is
// sending, else queued.
func DeriveStatus(states []DeliveryState) MessageStatus {
	if len(states) == 0 {
		return MessageStatus(StateQueued)
	}
	counts := map[DeliveryState]int{}
	ended := 0
	for _, s := range states {
		counts[s]++
		if s.Final() {
			ended++
		}
	}
	if ended < len(states) {
		if counts[StateSending] > 0 {
			return MessageStatus(StateSending)
		}
		return MessageStatus(StateQueued)
	}
	switch d := counts[StateDelivered]; {
	case d == len(states):
		return MessageStatus(StateDelivered)
	case d > 0:
		return StatusPartial
	}
	best := StateExpired
	for _, s := range []DeliveryState{StateExpired, StateFailed, StateCancelled} {
		if counts[s] > counts[best] {
			best = s
		}
	}
	return MessageStatus(best)
}

// Outcome is the result of one attempt, as the API reports it.
type Outcome string

// Attempt outcomes. KindInvalid is reported as OutcomePermanent.
const (
	OutcomeDelivered   Outcome = "delivered"
	OutcomeTemporary   Outcome = "temporary"
	OutcomePermanent   Outcome = "permanent"
	OutcomeRateLimited Outcome = "rate_limited"
	OutcomeAuth        Outcome = "auth"
	OutcomeAmbiguous   Outcome = "ambiguous"
)

// OutcomeOf maps an error kind to the attempt outcome shown to users.
func OutcomeOf(k Kind) Outcome {
	switch k {
	case 0:
		return OutcomeDelivered
	case KindRateLimited:
		return OutcomeRateLimited
	case KindAuth:
		return OutcomeAuth
	case KindPermanent, KindInvalid:
		return OutcomePermanent
	case KindAmbiguous:
		return OutcomeAmbiguous
	default:
		return OutcomeTemporary
	}
}

// MessageKind tells ordinary messages from the ones relay makes itself.
type MessageKind string

// Message kinds. A failed notice never causes another notice.
const (
	KindMessage MessageKind = "message" // submitted by a client
	KindNotice  MessageKind = "notice"  // relay's own notice to delivery.admin
	KindInbound MessageKind = "inbound" // a customer's message forwarded to the owner
	KindReply   MessageKind = "reply"   // the owner's reply to a customer
)

// Priority of a message; "high" maps to the channels' urgent modes (ntfy).
const PriorityHigh = "high"

// Message is what a client submits: a text for one or more recipients.
type Message struct {
	ID        string
	Kind      MessageKind
	Subject   string
	Text      string
	Priority  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Submitter is the name of the API token that submitted it ("" for
	// loopback clients and relay itself); a send token may read its own.
	Submitter string
	// IdempotencyKey and RequestHash implement Idempotency-Key: the same
	// key from the same submitter with the same hash returns this message.
	IdempotencyKey string
	RequestHash    string
	// ConversationID links inbound messages and replies to a conversation.
	ConversationID string
	Deliveries     []*Delivery
}

// Status derives the message status from its deliveries.
func (m *Message) Status() MessageStatus {
	states := make([]DeliveryState, len(m.Deliveries))
	for i, d := range m.Deliveries {
		states[i] = d.State
	}
	return DeriveStatus(states)
}

// Hop is one step of a resolved route: a channel and the contact's address
// on it.
type Hop struct {
	Channel string `json:"channel"`
	Address string `json:"address"`
}

// Delivery is one message to one contact, with its own state and attempts.
type Delivery struct {
	ID        string
	MessageID string
	Contact   string
	// Route is the route resolved when the message was accepted. The
	// dispatcher prefers the contact's current route (after a reload) and
	// falls back to this snapshot when the contact is gone.
	Route []Hop
	// Pinned is true when the route was given explicitly (per-message route
	// or a reply that must go back on the customer's channel): the
	// dispatcher then never substitutes the contact's current route.
	Pinned    bool
	State     DeliveryState
	Channel   string // the channel it was delivered on, or is being sent on
	Round     int    // how many full passes over the route have failed
	NextAt    time.Time
	ExpiresAt time.Time
	UpdatedAt time.Time
	LastError string
	// RetriedAt is when an operator last retried the delivery after it
	// ended: refusals recorded before it are not held against the new try.
	RetriedAt time.Time
	Attempts  []Attempt

	// Denormalised from the message, so a claimed delivery is self-contained.
	Kind      MessageKind
	Subject   string
	Text      string
	Priority  string
	CreatedAt time.Time
}

// Attempt is one try of one delivery on one channel.
type Attempt struct {
	ID          int64
	DeliveryID  string
	Channel     string
	At          time.Time
	Outcome     Outcome // "" while in flight
	Error       string
	UpstreamID  string
	DeliveredAt time.Time // receipt: reached the device
	ReadAt      time.Time // receipt: read
}
