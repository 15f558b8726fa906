package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
)

// MaxTextRunes bounds a message's text; channels split what they must.
const MaxTextRunes = 64 << 10

// SubmitRequest is the body of POST /v1/messages.
type SubmitRequest struct {
	To       Recipients `json:"to"`
	Text     string     `json:"text"`
	Subject  string     `json:"subject,omitempty"`
	Priority string     `json:"priority,omitempty"`
	Route    []string   `json:"route,omitempty"`
	TTL      string     `json:"ttl,omitempty"`
}

// Recipients is "to": one name or a list of names.
type Recipients []string

// UnmarshalJSON accepts a string or an array of strings.
func (r *Recipients) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*r = Recipients{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New(`"to" must be a name or a list of names`)
	}
	*r = many
	return nil
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeSubmit(w, r)
	if !ok {
		return
	}
	if msg := req.validate(); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("ttl %q is not a positive duration like \"2h\"", req.TTL))
			return
		}
		ttl = d
	}
	p := PrincipalOf(r.Context())
	if err := s.checkSendTo(p, req.To); err != nil {
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		writeError(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key is longer than 255 characters")
		return
	}
	var hash string
	if key != "" {
		hash = req.hash()
	}
	m, created, err := s.deps.Dispatcher.Submit(r.Context(), dispatch.Request{
		To: req.To, Text: req.Text, Subject: req.Subject, Priority: req.Priority, Route: req.Route, TTL: ttl,
		Submitter: p.Name, IdempotencyKey: key, RequestHash: hash,
	})
	if err != nil {
		status, code := errStatus(err)
		if r.Context().Err() != nil {
			return // the client went away; nothing to answer
		}
		if code == "internal" {
			s.log.Error("accept message", "err", err)
		}
		msg := err.Error()
		if code == "idempotency_conflict" {
			msg = "Idempotency-Key was already used with a different request"
		}
		writeError(w, status, code, msg)
		return
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, acceptedView(m))
}

func decodeSubmit(w http.ResponseWriter, r *http.Request) (*SubmitRequest, bool) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req SubmitRequest
	switch ct {
	case "application/json", "":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			tooLarge(w, err)
			return nil, false
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
			return nil, false
		}
		if dec.More() {
			writeError(w, http.StatusBadRequest, "invalid_json", "request body: more than one JSON value")
			return nil, false
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(MaxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			if tooLarge(w, err) {
				return nil, false
			}
			writeError(w, http.StatusBadRequest, "invalid_request", "form: "+err.Error())
			return nil, false
		}
		for _, t := range r.PostForm["to"] {
			for _, name := range strings.Split(t, ",") {
				if name = strings.TrimSpace(name); name != "" {
					req.To = append(req.To, name)
				}
			}
		}
		req.Text, req.Subject = r.PostFormValue("text"), r.PostFormValue("subject")
	default:
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json or application/x-www-form-urlencoded")
		return nil, false
	}
	return &req, true
}

func tooLarge(w http.ResponseWriter, err error) bool {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body over 1 MiB")
		return true
	}
	writeError(w, http.StatusBadRequest, "invalid_request", "reading body: "+err.Error())
	return true
}

func (req *SubmitRequest) validate() string {
	switch {
	case len(req.To) == 0:
		return `"to" is required`
	case strings.TrimSpace(req.Text) == "":
		return `"text" is required`
	case !utf8.ValidString(req.Text) || !utf8.ValidString(req.Subject):
		return "text and subject must be UTF-8"
	case utf8.RuneCountInString(req.Text) > MaxTextRunes:
		return fmt.Sprintf(`"text" is longer than %d characters`, MaxTextRunes)
	case req.Priority != "" && req.Priority != "normal" && req.Priority != relay.PriorityHigh:
		return `"priority" is "normal" or "high"`
	}
	for _, t := range req.To {
		if strings.TrimSpace(t) == "" {
			return `"to" contains an empty name`
		}
	}
	return ""
}

// hash fingerprints the request for Idempotency-Key comparison.
func (req *SubmitRequest) hash() string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkSendTo enforces a token's send_to list: each recipient must be
// listed, or be a contact in a listed group.
func (s *Server) checkSendTo(p *Principal, to []string) error {
	if len(p.sendTo) == 0 {
		return nil
	}
	dir := s.deps.Dispatcher.Runtime().Directory
	for _, t := range to {
		if slices.Contains(p.sendTo, t) {
			continue
		}
		allowed := false
		for _, a := range p.sendTo {
			if g, ok := strings.CutPrefix(a, relay.GroupPrefix); ok && slices.Contains(dir.Groups[g], t) {
				allowed = true
				break
			}
		}
		if !allowed {
			return fmt.Errorf("this token may not send to %q", t)
		}
	}
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	m, err := s.deps.Store.Message(r.Context(), r.PathValue("id"))
	if err != nil {
		status, code := errStatus(err)
		writeError(w, status, code, "message "+r.PathValue("id")+": "+err.Error())
		return
	}
	p := PrincipalOf(r.Context())
	if !p.Has(ScopeRead) && m.Submitter != p.Name {
		// A send token reads only what it submitted; others look absent.
		writeError(w, http.StatusNotFound, "not_found", "message "+r.PathValue("id")+": not found")
		return
	}
	writeJSON(w, http.StatusOK, messageView(m))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := relay.MessageFilter{Status: relay.MessageStatus(q.Get("status")), Before: q.Get("before")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit is 1..500")
			return
		}
		f.Limit = n
	}
	switch f.Status {
	case "", "queued", "sending", "delivered", "partial", "expired", "failed", "cancelled":
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "unknown status "+string(f.Status))
		return
	}
	p := PrincipalOf(r.Context())
	if !p.Has(ScopeRead) {
		f.Submitter = p.Name
	}
	ms, err := s.deps.Store.Messages(r.Context(), f)
	if err != nil {
		s.log.Error("list messages", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	views := make([]MessageView, len(ms))
	for i, m := range ms {
		views[i] = messageView(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": views})
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	s.act(w, r, func(id string) error { return s.deps.Dispatcher.Cancel(r.Context(), id) })
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	s.act(w, r, func(id string) error { return s.deps.Dispatcher.Retry(r.Context(), id) })
}

func (s *Server) act(w http.ResponseWriter, r *http.Request, f func(id string) error) {
	id := r.PathValue("id")
	if err := f(id); err != nil {
		status, code := errStatus(err)
		writeError(w, status, code, "message "+id+": "+err.Error())
		return
	}
	m, err := s.deps.Store.Message(r.Context(), id)
	if err != nil {
		status, code := errStatus(err)
		writeError(w, status, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, messageView(m))
}

// MessageView is a message as the API shows it.
type MessageView struct {
	ID         string         `json:"id"`
	Status     string         `json:"status"`
	Kind       string         `json:"kind,omitempty"`
	Subject    string         `json:"subject,omitempty"`
	Text       string         `json:"text,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	ExpiresAt  time.Time      `json:"expires_at,omitzero"`
	Deliveries []DeliveryView `json:"deliveries"`
}

// DeliveryView is one delivery as the API shows it.
type DeliveryView struct {
	ID        string        `json:"id"`
	To        string        `json:"to"`
	Status    string        `json:"status"`
	Channel   string        `json:"channel,omitempty"`
	Route     []string      `json:"route,omitempty"`
	NextAt    *time.Time    `json:"next_at,omitempty"`
	LastError string        `json:"last_error,omitempty"`
	MayAlso   []string      `json:"may_also_have_arrived_on,omitempty"`
	Attempts  []AttemptView `json:"attempts"`
}

// AttemptView is one attempt as the API shows it.
type AttemptView struct {
	Channel     string    `json:"channel"`
	At          time.Time `json:"at"`
	Outcome     string    `json:"outcome"`
	Error       string    `json:"error,omitempty"`
	UpstreamID  string    `json:"upstream_id,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	ReadAt      time.Time `json:"read_at,omitzero"`
}

// acceptedBody is the answer to a submission. Structs rather than maps:
// it is written for every accepted message. The fields are in the order a
// map would have sorted them, which the body has always had.
type acceptedBody struct {
	Deliveries []acceptedDelivery `json:"deliveries"`
	ID         string             `json:"id"`
	Status     string             `json:"status"`
}

type acceptedDelivery struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	To     string `json:"to"`
}

func acceptedView(m *relay.Message) acceptedBody {
	ds := make([]acceptedDelivery, len(m.Deliveries))
	for i, d := range m.Deliveries {
		ds[i] = acceptedDelivery{ID: d.ID, To: d.Contact, Status: string(d.State)}
	}
	return acceptedBody{ID: m.ID, Status: string(m.Status()), Deliveries: ds}
}

func messageView(m *relay.Message) MessageView {
	v := MessageView{ID: m.ID, Status: string(m.Status()), Kind: string(m.Kind), Subject: m.Subject, Text: m.Text,
		CreatedAt: m.CreatedAt.UTC(), ExpiresAt: m.ExpiresAt.UTC(), Deliveries: []DeliveryView{}}
	for _, d := range m.Deliveries {
		dv := DeliveryView{ID: d.ID, To: d.Contact, Status: string(d.State), LastError: d.LastError, Attempts: []AttemptView{}}
		if d.State == relay.StateDelivered {
			dv.Channel = d.Channel
		}
		for _, h := range d.Route {
			dv.Route = append(dv.Route, h.Channel)
		}
		if d.State == relay.StateQueued && !d.NextAt.IsZero() {
			t := d.NextAt.UTC()
			dv.NextAt = &t
		}
		for _, a := range d.Attempts {
			outcome := string(a.Outcome)
			if outcome == "" {
				outcome = "sending"
			}
			dv.Attempts = append(dv.Attempts, AttemptView{Channel: a.Channel, At: a.At.UTC(), Outcome: outcome, Error: a.Error,
				UpstreamID: a.UpstreamID, DeliveredAt: a.DeliveredAt.UTC(), ReadAt: a.ReadAt.UTC()})
			if a.Outcome == relay.OutcomeAmbiguous && a.Channel != d.Channel {
				dv.MayAlso = append(dv.MayAlso, a.Channel)
			}
		}
		v.Deliveries = append(v.Deliveries, dv)
	}
	return v
}
