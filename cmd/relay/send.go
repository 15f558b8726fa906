package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/relay-project/relay/relay/api"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// cmdSend submits a message; with --wait it follows it to its end and
// prints the route it took.
func cmdSend(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	var to, route stringList
	fs.Var(&to, "to", "contact or group:NAME (repeatable, or comma-separated)")
	fs.Var(&route, "route", "channels to use instead of the contact's route (repeatable)")
	subject := fs.String("subject", "", "subject (email, push)")
	priority := fs.String("priority", "", `"high" for urgent channels`)
	ttl := fs.String("ttl", "", "give up after this long (default delivery.ttl)")
	wait := fs.Bool("wait", false, "wait until every delivery ended and print the route each took")
	waitMax := fs.Duration("wait-timeout", 2*time.Minute, "how long --wait waits")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var names []string
	for _, t := range to {
		for _, n := range strings.Split(t, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: relay send --to NAME [--subject S] [--wait] TEXT|-")
		return 2
	}
	text, err := textArg(fs.Arg(0), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "relay: reading stdin: %v\n", err)
		return 1
	}
	c, err := newClient(*cfgPath, "send")
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	ctx, cancel := timeoutCtx(30 * time.Second)
	defer cancel()
	var accepted struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	req := api.SubmitRequest{To: names, Text: text, Subject: *subject, Priority: *priority, Route: route, TTL: *ttl}
	if err := c.do(ctx, http.MethodPost, "/v1/messages", req, &accepted); err != nil {
		fmt.Fprintf(stderr, "relay: send: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s %s\n", accepted.ID, accepted.Status)
	if !*wait {
		return 0
	}
	m, err := waitFinal(c, accepted.ID, *waitMax)
	if err != nil {
		fmt.Fprintf(stderr, "relay: wait: %v\n", err)
		return 1
	}
	printMessage(stdout, m)
	if m.Status != "delivered" {
		return 1
	}
	return 0
}

var finalStatus = map[string]bool{"delivered": true, "partial": true, "expired": true, "failed": true, "cancelled": true}

// waitFinal polls the message until its status is final.
func waitFinal(c *client, id string, max time.Duration) (*api.MessageView, error) {
	ctx, cancel := timeoutCtx(max)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		var m api.MessageView
		if err := c.do(ctx, http.MethodGet, "/v1/messages/"+id, nil, &m); err != nil {
			return nil, err
		}
		if finalStatus[m.Status] {
			return &m, nil
		}
		select {
		case <-ctx.Done():
			return &m, fmt.Errorf("still %s after %s", m.Status, max)
		case <-t.C:
		}
	}
}

// printMessage prints a message, its deliveries and the route each took.
func printMessage(w io.Writer, m *api.MessageView) {
	fmt.Fprintf(w, "message %s: %s (created %s)\n", m.ID, m.Status, m.CreatedAt.Local().Format(time.DateTime))
	for _, d := range m.Deliveries {
		line := fmt.Sprintf("  to %-12s %-9s", d.To, d.Status)
		if d.Channel != "" {
			line += " on " + d.Channel
		}
		var path []string
		for _, a := range d.Attempts {
			path = append(path, a.Channel+":"+a.Outcome)
		}
		if len(path) > 0 {
			line += "  route: " + strings.Join(path, " → ")
		}
		if len(d.MayAlso) > 0 {
			line += "  (may also have arrived on " + strings.Join(d.MayAlso, ", ") + ")"
		}
		fmt.Fprintln(w, line)
		for _, a := range d.Attempts {
			if a.Error != "" {
				fmt.Fprintf(w, "      %s %s %s: %s\n", a.At.Local().Format(time.TimeOnly), a.Channel, a.Outcome, a.Error)
			}
		}
		if d.Status != "delivered" && d.LastError != "" {
			fmt.Fprintf(w, "      last error: %s\n", d.LastError)
		}
	}
}
