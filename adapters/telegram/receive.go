package telegram

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/relay-project/relay/relay"
)

// offsetKey is the env.State key of the next getUpdates offset.
const offsetKey = "offset"

// secretHeader carries setWebhook's secret_token on every webhook POST
// (core.telegram.org/bots/api#setwebhook).
const secretHeader = "X-Telegram-Bot-Api-Secret-Token"

// allowedUpdates limits what Telegram sends us to new messages; the
// setting is kept by Telegram for both getUpdates and the webhook.
const allowedUpdates = `["message"]`

// maxWebhookBody bounds one webhook request, as the API bounds its own.
const maxWebhookBody = 1 << 20

// pollLoop long-polls getUpdates until ctx is done. The offset advances,
// in memory and in env.State, only after env.Inbound accepted the update,
// so an update the sink did not take is fetched again.
func (a *Adapter) pollLoop(ctx context.Context) {
	offset := a.loadOffset(ctx)
	failures := 0
	conflict := false
	for ctx.Err() == nil {
		updates, err := a.getUpdates(ctx, offset)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := a.backoff(failures)
			switch {
			case isConflict(err):
				if !conflict {
					conflict = true
					a.log.Warn("telegram getUpdates conflict", "error", err)
					a.env.Signal(relay.HealthSignal{Reason: conflictReason(err), Notify: true})
				}
			case relay.KindOf(err) == relay.KindRateLimited:
				wait = max(wait, relay.RetryAfterOf(err))
				a.log.Warn("telegram getUpdates rate limited", "retry_after", wait)
			case failures == 1:
				a.log.Warn("telegram getUpdates failed; retrying with backoff", "error", err)
			default:
				a.log.Debug("telegram getUpdates failed again", "error", err, "failures", failures, "wait", wait)
			}
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		if failures > 0 {
			a.log.Info("telegram getUpdates works again", "after_failures", failures)
			failures, conflict = 0, false
		}
		for _, u := range updates {
			if u.UpdateID < offset {
				continue // confirmed before; a stale server answer
			}
			if err := a.handleUpdate(ctx, u); err != nil {
				if ctx.Err() != nil {
					return
				}
				// Not accepted: keep the offset, so the update comes again.
				failures++
				a.log.Warn("telegram update not accepted; it will be fetched again",
					"update_id", u.UpdateID, "error", err)
				if !sleep(ctx, a.backoff(failures)) {
					return
				}
				break
			}
			offset = u.UpdateID + 1
			a.saveOffset(ctx, offset)
		}
	}
}

func conflictReason(err error) string {
	var te *tgbotapi.Error
	if errors.As(err, &te) && strings.Contains(strings.ToLower(te.Message), "webhook") {
		return `Telegram has a webhook set for this bot, so receive = "poll" gets nothing: ` +
			`delete the webhook (deleteWebhook) or set receive = "webhook"`
	}
	return "another program is polling this Telegram bot (getUpdates conflict): " +
		"only one bot instance may receive; stop the other one or use a separate bot token"
}

// getUpdates makes one long-poll call from offset.
func (a *Adapter) getUpdates(ctx context.Context, offset int) ([]tgbotapi.Update, error) {
	// The server holds the call up to the poll timeout; allow that plus
	// time for the answer to come back.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.PollTimeout)*time.Second+15*time.Second)
	defer cancel()
	bot, _, err := a.botFor(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := bot.MakeRequest("getUpdates", tgbotapi.Params{
		"offset":          strconv.Itoa(offset),
		"timeout":         strconv.Itoa(a.cfg.PollTimeout),
		"allowed_updates": allowedUpdates,
	})
	if err != nil {
		if isConflict(err) {
			return nil, err // pollLoop tells the two 409s apart
		}
		return nil, classify(call{method: "getUpdates", trace: bot.trace}, a.cfg.Token, err)
	}
	var updates []tgbotapi.Update
	if err := json.Unmarshal(resp.Result, &updates); err != nil {
		return nil, relay.Errorf(relay.KindTemporary, "telegram: getUpdates: result: %w", err)
	}
	return updates, nil
}

func (a *Adapter) loadOffset(ctx context.Context) int {
	if a.env.State == nil {
		return 0
	}
	v, ok, err := a.env.State.Get(ctx, offsetKey)
	if err != nil {
		// Offset 0 asks for every unconfirmed update; the sink
		// deduplicates what was taken before.
		a.log.Warn("telegram poll offset not readable; starting from Telegram's unconfirmed updates", "error", err)
		return 0
	}
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		a.log.Warn("telegram poll offset is not a number; starting from Telegram's unconfirmed updates")
		return 0
	}
	return n
}

func (a *Adapter) saveOffset(ctx context.Context, offset int) {
	if a.env.State == nil {
		return
	}
	if err := a.env.State.Put(ctx, offsetKey, []byte(strconv.Itoa(offset))); err != nil {
		// The next getUpdates confirms the update to Telegram anyway; a
		// restart before the next successful Put fetches it again, and
		// the sink deduplicates it.
		a.log.Warn("telegram poll offset not saved", "error", err)
	}
}

// registerWebhook calls setWebhook with webhook_url and the secret,
// retrying with backoff until it succeeds or ctx is done.
func (a *Adapter) registerWebhook(ctx context.Context) {
	target := a.cfg.WebhookURL
	if u, err := url.Parse(target); err == nil {
		target = u.Redacted()
	}
	for failures := 0; ; {
		err := a.setWebhook(ctx)
		if err == nil {
			a.log.Info("telegram webhook registered", "webhook_url", target)
			return
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := max(a.backoff(failures), relay.RetryAfterOf(err))
		if relay.KindOf(err) == relay.KindInvalid || relay.KindOf(err) == relay.KindPermanent {
			// Telegram refused the URL or the secret: retrying will not
			// help, the operator must fix the config.
			a.log.Error("telegram refused setWebhook; fix webhook_url or webhook_secret", "error", err)
			a.env.Signal(relay.HealthSignal{Reason: "Telegram refused the webhook: " + err.Error(), Notify: true})
			return
		}
		if failures == 1 {
			a.log.Warn("telegram setWebhook failed; retrying with backoff", "error", err)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

func (a *Adapter) setWebhook(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	bot, _, err := a.botFor(ctx)
	if err != nil {
		return err
	}
	// v5.5.1's WebhookConfig has no secret_token (go-telegram-bot-api
	// issue #670), so the call is made by hand.
	_, err = bot.MakeRequest("setWebhook", tgbotapi.Params{
		"url":             a.cfg.WebhookURL,
		"secret_token":    a.cfg.WebhookSecret,
		"allowed_updates": allowedUpdates,
	})
	if err != nil {
		return classify(call{method: "setWebhook", trace: bot.trace}, a.cfg.Token, err)
	}
	return nil
}

// Webhook returns the handler for Telegram's webhook POSTs. It answers
// 401 without a matching secret token, and 200 only after the update was
// accepted (500 otherwise, so that Telegram delivers it again).
func (a *Adapter) Webhook() http.Handler {
	return http.HandlerFunc(a.serveWebhook)
}

func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Receive != ReceiveWebhook {
		http.Error(w, `this channel does not receive by webhook (receive = "webhook" is not set)`, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !a.secretMatches(r.Header.Get(secretHeader)) {
		a.log.Warn("telegram webhook request without the right secret token", "remote_addr", r.RemoteAddr)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var u tgbotapi.Update
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err := dec.Decode(&u); err != nil {
		http.Error(w, "bad update", http.StatusBadRequest)
		return
	}
	if err := a.handleUpdate(r.Context(), u); err != nil {
		a.log.Warn("telegram webhook update not accepted; Telegram will deliver it again",
			"update_id", u.UpdateID, "error", err)
		http.Error(w, "not accepted, try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// secretMatches compares in constant time; hashing first also hides the
// secret's length.
func (a *Adapter) secretMatches(got string) bool {
	if a.cfg.WebhookSecret == "" || got == "" {
		return false
	}
	want := sha256.Sum256([]byte(a.cfg.WebhookSecret))
	have := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

// handleUpdate gives one update's message to env.Inbound. Updates without
// a message, service messages and update_ids this process already had
// accepted return nil without a call.
func (a *Adapter) handleUpdate(ctx context.Context, u tgbotapi.Update) error {
	if a.seen.has(u.UpdateID) {
		return nil
	}
	m, ok := a.inbound(u)
	if !ok {
		return nil
	}
	if err := a.env.Inbound.Accept(ctx, m); err != nil {
		return err
	}
	a.seen.add(u.UpdateID)
	return nil
}

// inbound converts an update to an InboundMessage. UpstreamID is
// "<chat_id>:<message_id>", the form Send returns, so a customer's reply
// to a message we sent can be matched through ReplyTo.
func (a *Adapter) inbound(u tgbotapi.Update) (relay.InboundMessage, bool) {
	msg := u.Message
	if msg == nil || msg.Chat == nil {
		return relay.InboundMessage{}, false
	}
	text := messageText(msg)
	if text == "" {
		return relay.InboundMessage{}, false // a service message (member joined, title changed)
	}
	chat := strconv.FormatInt(msg.Chat.ID, 10)
	in := relay.InboundMessage{
		Channel:    a.env.Name,
		UpstreamID: chat + ":" + strconv.Itoa(msg.MessageID),
		SenderID:   chat,
		SenderName: senderName(msg),
		Text:       text,
		At:         time.Unix(int64(msg.Date), 0).UTC(),
	}
	if r := msg.ReplyToMessage; r != nil {
		in.ReplyTo = chat + ":" + strconv.Itoa(r.MessageID)
	}
	return in, true
}

func senderName(m *tgbotapi.Message) string {
	if f := m.From; f != nil {
		if n := strings.TrimSpace(f.FirstName + " " + f.LastName); n != "" {
			return n
		}
		return f.UserName
	}
	return m.Chat.Title
}

// messageText returns the text, or a placeholder naming the media with its
// caption, or "" for service messages.
func messageText(m *tgbotapi.Message) string {
	if m.Text != "" {
		return m.Text
	}
	var kind string
	switch {
	case len(m.Photo) > 0:
		kind = "[photo]"
	case m.Sticker != nil:
		kind = "[sticker]"
		if m.Sticker.Emoji != "" {
			kind = "[sticker " + m.Sticker.Emoji + "]"
		}
	case m.Voice != nil:
		kind = "[voice]"
	case m.VideoNote != nil:
		kind = "[video note]"
	case m.Video != nil:
		kind = "[video]"
	case m.Animation != nil:
		kind = "[animation]"
	case m.Audio != nil:
		kind = "[audio]"
	case m.Document != nil:
		kind = "[document]"
	case m.Location != nil || m.Venue != nil:
		kind = "[location]"
	case m.Contact != nil:
		kind = "[contact]"
	case m.Poll != nil:
		kind = "[poll]"
	case m.Dice != nil:
		kind = "[dice]"
	case m.Game != nil:
		kind = "[game]"
	default:
		return ""
	}
	if m.Caption != "" {
		return kind + " " + m.Caption
	}
	return kind
}

// seenSet remembers the last n update_ids accepted in this process, so a
// webhook redelivery (our 200 got lost) is not accepted twice.
type seenSet struct {
	mu   sync.Mutex
	ids  map[int]struct{}
	ring []int
	next int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{ids: make(map[int]struct{}, n), ring: make([]int, 0, n)}
}

func (s *seenSet) has(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

func (s *seenSet) add(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, id)
	} else {
		delete(s.ids, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % len(s.ring)
	}
	s.ids[id] = struct{}{}
}

// backoff returns the wait after the n-th consecutive failure: doubling
// from backoffMin up to backoffMax, with the upper half jittered so that
// restarted instances do not poll in step.
func (a *Adapter) backoff(n int) time.Duration {
	d := a.backoffMin
	for i := 1; i < n && d < a.backoffMax; i++ {
		d *= 2
	}
	d = min(d, a.backoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
