package web

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/dispatch"
	"github.com/relay-project/relay/relay/health"
)

// Strip geometry: 48 half-hour cells cover the last 24 hours.
const (
	stripCells = 48
	stripCell  = 30 * time.Minute
)

// channelRow is one channel on the overview.
type channelRow struct {
	health.Status
	Strip      []cell
	Linkable   bool   // relay.Linker: WhatsApp pairing
	Account    string // the linked account
	Authorizer bool   // relay.Authorizer: Kakao login
	Error      string // last error or the adapter's own reason
}

// cell is one segment of the history strip.
type cell struct {
	State string // "up", "down", "unknown" or "none" (before monitoring began)
	From  time.Time
	To    time.Time
}

// historyStrip renders transitions as n cells of width w ending at now.
// A cell shows the worst state the channel was in during it (down beats
// unknown beats up), so a short outage stays visible; cells before the
// first known transition are "none".
func historyStrip(hist []health.Transition, now time.Time, n int, w time.Duration) []cell {
	out := make([]cell, n)
	start := now.Add(-time.Duration(n) * w)
	for i := range out {
		from, to := start.Add(time.Duration(i)*w), start.Add(time.Duration(i+1)*w)
		out[i] = cell{State: "none", From: from, To: to}
		rank := -1
		for j, tr := range hist {
			end := now.Add(time.Nanosecond)
			if j+1 < len(hist) {
				end = hist[j+1].At
			}
			// The transition's state holds over [tr.At, end).
			if !tr.At.Before(to) || !end.After(from) {
				continue
			}
			if r := stateRank(tr.State); r > rank {
				rank = r
				out[i].State = string(tr.State)
			}
		}
	}
	return out
}

func stateRank(s health.State) int {
	switch s {
	case health.Down:
		return 2
	case health.Unknown:
		return 1
	}
	return 0
}

// routeStep is one attempt in a delivery's route: "kakao ✗".
type routeStep struct {
	Channel string
	Outcome string
	Mark    string
}

type deliveryRow struct {
	MessageID string
	To        string
	State     string
	At        time.Time
	Steps     []routeStep
	Failover  bool
}

func mark(o relay.Outcome) string {
	switch o {
	case relay.OutcomeDelivered:
		return "✓"
	case relay.OutcomeAmbiguous:
		return "?"
	case "":
		return "…"
	}
	return "✗"
}

func routeOf(d *relay.Delivery) []routeStep {
	steps := make([]routeStep, 0, len(d.Attempts))
	for _, a := range d.Attempts {
		o := string(a.Outcome)
		if o == "" {
			o = "sending"
		}
		steps = append(steps, routeStep{Channel: a.Channel, Outcome: o, Mark: mark(a.Outcome)})
	}
	return steps
}

func (c *Console) channelRows() []channelRow {
	now := c.now()
	rt := c.opt.Dispatcher.Runtime()
	st := c.opt.Health.Status()
	rows := make([]channelRow, 0, len(st))
	for _, s := range st {
		row := channelRow{Status: s, Strip: historyStrip(s.History, now, stripCells, stripCell), Error: s.LastError}
		if s.Reason != "" {
			row.Error = s.Reason
		}
		if s.State == health.Up {
			row.Error = ""
		}
		if ch, ok := rt.Channels[s.Name]; ok {
			if l, ok := ch.Adapter.(relay.Linker); ok {
				row.Linkable, row.Account = true, l.LinkedAccount()
			}
			_, row.Authorizer = ch.Adapter.(relay.Authorizer)
		}
		rows = append(rows, row)
	}
	return rows
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	counts, err := c.opt.Store.Counts(ctx)
	if err != nil {
		c.log.Error("console: queue counts", "err", err)
	}
	msgs, err := c.opt.Store.Messages(ctx, relay.MessageFilter{Limit: 20})
	if err != nil {
		c.log.Error("console: recent messages", "err", err)
	}
	var recent []deliveryRow
	for _, m := range msgs {
		for _, d := range m.Deliveries {
			row := deliveryRow{MessageID: m.ID, To: d.Contact, State: string(d.State), At: m.CreatedAt, Steps: routeOf(d)}
			row.Failover = len(row.Steps) > 1
			recent = append(recent, row)
		}
	}
	queue := []struct {
		State string
		N     int
	}{}
	for _, st := range []relay.DeliveryState{relay.StateQueued, relay.StateSending, relay.StateDelivered,
		relay.StateExpired, relay.StateFailed, relay.StateCancelled} {
		queue = append(queue, struct {
			State string
			N     int
		}{string(st), counts[st]})
	}
	c.render(w, r, s, http.StatusOK, "overview", map[string]any{
		"Channels": c.channelRows(), "Queue": queue, "Recent": recent,
	})
}

func (c *Console) message(w http.ResponseWriter, r *http.Request, s *session) {
	m, err := c.opt.Store.Message(r.Context(), r.PathValue("id"))
	if errors.Is(err, relay.ErrNotFound) {
		c.fail(w, r, s, http.StatusNotFound, "err.no_message")
		return
	}
	if err != nil {
		c.log.Error("console: read message", "err", err)
		c.fail(w, r, s, http.StatusInternalServerError, "err.internal")
		return
	}
	type delivery struct {
		*relay.Delivery
		Steps   []routeStep
		Planned []string
		MayAlso []string
	}
	var ds []delivery
	for _, d := range m.Deliveries {
		dv := delivery{Delivery: d, Steps: routeOf(d)}
		for _, h := range d.Route {
			dv.Planned = append(dv.Planned, h.Channel)
		}
		for _, a := range d.Attempts {
			if a.Outcome == relay.OutcomeAmbiguous && a.Channel != d.Channel && !slices.Contains(dv.MayAlso, a.Channel) {
				dv.MayAlso = append(dv.MayAlso, a.Channel)
			}
		}
		ds = append(ds, dv)
	}
	refresh := !relay.DeliveryState(m.Status()).Final() && m.Status() != relay.StatusPartial
	c.render(w, r, s, http.StatusOK, "message", map[string]any{
		"Message": m, "Status": string(m.Status()), "Deliveries": ds, "Pending": refresh,
	})
}

// recipients lists the contacts and groups a test message may go to.
func (c *Console) recipients() []string {
	dir := c.opt.Dispatcher.Runtime().Directory
	var out []string
	for name := range dir.Contacts {
		out = append(out, name)
	}
	sort.Strings(out)
	var groups []string
	for g := range dir.Groups {
		groups = append(groups, relay.GroupPrefix+g)
	}
	sort.Strings(groups)
	return append(out, groups...)
}

func (c *Console) sendPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, http.StatusOK, "send", map[string]any{
		"Recipients": c.recipients(), "To": r.URL.Query().Get("to"), "Text": "",
	})
}

// maxText bounds a test message (the API's limit).
const maxText = 64 << 10

func (c *Console) send(w http.ResponseWriter, r *http.Request, s *session) {
	to := strings.TrimSpace(r.PostFormValue("to"))
	text := r.PostFormValue("text")
	again := func(status int, key string) {
		c.render(w, r, s, status, "send", map[string]any{"Recipients": c.recipients(), "To": to, "Text": text, "Error": key})
	}
	switch {
	case to == "" || !slices.Contains(c.recipients(), to):
		again(http.StatusBadRequest, "send.bad_to")
		return
	case strings.TrimSpace(text) == "" || !utf8.ValidString(text) || utf8.RuneCountInString(text) > maxText:
		again(http.StatusBadRequest, "send.bad_text")
		return
	}
	m, _, err := c.opt.Dispatcher.Submit(r.Context(), dispatch.Request{To: []string{to}, Text: text, Submitter: s.user})
	if err != nil {
		c.log.Error("console: submit test message", "err", err)
		again(http.StatusUnprocessableEntity, "send.failed")
		return
	}
	http.Redirect(w, r, "/ui/messages/"+m.ID, http.StatusSeeOther)
}
