package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
)

// Conversations is the two-way pipeline as the API uses it.
type Conversations interface {
	// List returns up to limit conversations, newest message first.
	List(ctx context.Context, limit int) ([]*relay.Conversation, error)
	// Get returns a conversation by id or tag with its messages, oldest
	// first, or an error wrapping relay.ErrNotFound.
	Get(ctx context.Context, idOrTag string) (*relay.Conversation, []relay.ConversationMessage, error)
	// Reply queues text for the customer on the conversation's channel and
	// returns the reply message once it is durable; relay.ErrNotFound or
	// relay.ErrCannotReply when it cannot.
	Reply(ctx context.Context, idOrTag, text, submitter string) (*relay.Message, *relay.Conversation, error)
	// AcceptForm takes a website form submission once it is durable;
	// relay.ErrInvalidInbound for a submission to refuse.
	AcceptForm(ctx context.Context, name, contact, text string) error
	// FormToken is inbound.form_token, "" when none is set.
	FormToken() string
}

// ConversationView is a conversation as the API shows it.
type ConversationView struct {
	ID            string                    `json:"id"`
	Tag           string                    `json:"tag"`
	Channel       string                    `json:"channel"`
	CustomerID    string                    `json:"customer_id"`
	CustomerName  string                    `json:"customer_name,omitempty"`
	State         string                    `json:"state"` // open (waiting for an answer) or answered
	Unanswered    int                       `json:"unanswered"`
	CreatedAt     time.Time                 `json:"created_at"`
	LastAt        time.Time                 `json:"last_at"`
	LastText      string                    `json:"last_text"`
	LastDirection string                    `json:"last_direction,omitempty"`
	Messages      []ConversationMessageView `json:"messages,omitempty"`
}

// ConversationMessageView is one message of a conversation.
type ConversationMessageView struct {
	Direction string    `json:"direction"` // in, out
	Text      string    `json:"text"`
	At        time.Time `json:"at"`
	// Status: for an inbound message "forwarded" or "held"; for an
	// outgoing one its delivery status (queued ... delivered, failed).
	Status string `json:"status"`
	Held   string `json:"held,omitempty"` // too_long, rate_limited, no_forward_to
	Auto   bool   `json:"auto,omitempty"` // the auto-reply
	// MessageID is the relay message carrying it (the forward of an inbound
	// message, with ForwardStatus; the reply of an outgoing one).
	MessageID     string `json:"message_id,omitempty"`
	ForwardStatus string `json:"forward_status,omitempty"`
	Via           string `json:"via,omitempty"` // the channel an owner's reply was written on
}

func conversationView(c *relay.Conversation) ConversationView {
	state := "answered"
	if c.Unanswered > 0 {
		state = "open"
	}
	return ConversationView{ID: c.ID, Tag: c.Tag, Channel: c.Channel, CustomerID: c.SenderID, CustomerName: c.SenderName,
		State: state, Unanswered: c.Unanswered, CreatedAt: c.CreatedAt.UTC(), LastAt: c.LastAt.UTC(), LastText: c.LastText,
		LastDirection: c.LastDirection}
}

func conversationMessageView(m relay.ConversationMessage) ConversationMessageView {
	v := ConversationMessageView{Direction: m.Direction, Text: m.Text, At: m.At.UTC(), Held: m.Held, Auto: m.Auto,
		MessageID: m.MessageID}
	if m.Direction == relay.DirectionIn {
		v.Status = "forwarded"
		if m.Held != "" {
			v.Status = "held"
		}
		v.ForwardStatus = string(m.MessageStatus)
		return v
	}
	v.Status = string(m.MessageStatus)
	v.Via = m.Channel
	return v
}

func (s *Server) noConversations(w http.ResponseWriter) bool {
	if s.deps.Conversations == nil {
		writeError(w, http.StatusNotFound, "not_found", "conversations are not enabled")
		return true
	}
	return false
}

func (s *Server) conversations(w http.ResponseWriter, r *http.Request) {
	if s.noConversations(w) {
		return
	}
	limit := 50
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit is 1..500")
			return
		}
		limit = n
	}
	list, err := s.deps.Conversations.List(r.Context(), limit)
	if err != nil {
		s.log.Error("list conversations", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	views := make([]ConversationView, len(list))
	for i, c := range list {
		views[i] = conversationView(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": views})
}

func (s *Server) conversation(w http.ResponseWriter, r *http.Request) {
	if s.noConversations(w) {
		return
	}
	c, msgs, err := s.deps.Conversations.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		status, code := errStatus(err)
		writeError(w, status, code, "conversation "+r.PathValue("id")+": "+err.Error())
		return
	}
	v := conversationView(c)
	v.Messages = make([]ConversationMessageView, len(msgs))
	for i, m := range msgs {
		v.Messages[i] = conversationMessageView(m)
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) replyConversation(w http.ResponseWriter, r *http.Request) {
	if s.noConversations(w) {
		return
	}
	p := PrincipalOf(r.Context())
	if len(p.sendTo) > 0 {
		// A reply goes to a customer, who is on no token's send_to list.
		writeError(w, http.StatusForbidden, "forbidden", "this token may send only to its send_to list, not to customers")
		return
	}
	text, ok := decodeText(w, r)
	if !ok {
		return
	}
	m, c, err := s.deps.Conversations.Reply(r.Context(), r.PathValue("id"), text, p.Name)
	switch {
	case errors.Is(err, relay.ErrCannotReply):
		writeError(w, http.StatusConflict, "cannot_reply", err.Error())
		return
	case err != nil:
		status, code := errStatus(err)
		if code == "internal" {
			s.log.Error("reply to conversation", "err", err)
		}
		writeError(w, status, code, "conversation "+r.PathValue("id")+": "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": m.ID, "status": string(m.Status()),
		"conversation": c.ID, "tag": c.Tag})
}

// decodeText reads {"text": "..."} or a form's text field.
func decodeText(w http.ResponseWriter, r *http.Request) (string, bool) {
	var body struct {
		Text string `json:"text"`
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data" {
		if err := r.ParseMultipartForm(MaxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			tooLarge(w, err)
			return "", false
		}
		body.Text = r.PostFormValue("text")
	} else {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				tooLarge(w, err)
				return "", false
			}
			writeError(w, http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
			return "", false
		}
	}
	switch {
	case strings.TrimSpace(body.Text) == "":
		writeError(w, http.StatusBadRequest, "invalid_request", `"text" is required`)
		return "", false
	case !utf8.ValidString(body.Text):
		writeError(w, http.StatusBadRequest, "invalid_request", "text must be UTF-8")
		return "", false
	case utf8.RuneCountInString(body.Text) > MaxTextRunes:
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf(`"text" is longer than %d characters`, MaxTextRunes))
		return "", false
	}
	return body.Text, true
}

// form takes POST /v1/inbound/form: a website's contact form (fields name,
// contact, text). With inbound.form_token set, the token must come as
// "Authorization: Bearer" or a "token" field; without it only loopback
// clients (a website on the same host) are served.
func (s *Server) form(w http.ResponseWriter, r *http.Request) {
	if s.noConversations(w) {
		return
	}
	if err := r.ParseMultipartForm(MaxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge(w, err)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "form: "+err.Error())
		return
	}
	want := s.deps.Conversations.FormToken()
	if want == "" {
		// Without a token only a website on this host may post: not a
		// request relayed by a reverse proxy (which connects from
		// loopback on behalf of anyone), nor a browser sent by a page.
		proxied := r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" || r.Header.Get("X-Real-IP") != ""
		if !IsLocal(r) || proxied {
			writeError(w, http.StatusForbidden, "forbidden", "inbound.form_token is not set: only a website on this host may post the form (set form_token for anything else)")
			return
		}
		if why := crossSite(r); why != "" {
			writeError(w, http.StatusForbidden, "forbidden", why)
			return
		}
	} else {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			got = r.PostFormValue("token")
		}
		a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(want))
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong form token")
			return
		}
	}
	text := r.PostFormValue("text")
	if !utf8.ValidString(text) || utf8.RuneCountInString(text) > MaxTextRunes {
		writeError(w, http.StatusBadRequest, "invalid_request", "text must be UTF-8 and at most 65536 characters")
		return
	}
	err := s.deps.Conversations.AcceptForm(r.Context(), r.PostFormValue("name"), r.PostFormValue("contact"), text)
	switch {
	case errors.Is(err, relay.ErrInvalidInbound):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	case err != nil:
		s.log.Error("accept form", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "the message was not stored; try again")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "received"})
}
