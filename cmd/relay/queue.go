package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relay-project/relay/relay/api"
)

// cmdQueue lists, shows, retries and cancels messages.
func cmdQueue(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: relay queue list [--status S] | show ID | retry ID | cancel ID")
		return 2
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	status := fs.String("status", "", "only messages with this status (queued, sending, delivered, partial, expired, failed, cancelled)")
	limit := fs.Int("limit", 20, "how many")
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	scope := "read"
	if sub == "retry" || sub == "cancel" {
		scope = "admin"
	}
	c, err := newClient(*cfgPath, scope)
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	ctx, cancel := timeoutCtx(15 * time.Second)
	defer cancel()
	switch sub {
	case "list":
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *status != "" {
			q.Set("status", *status)
		}
		var resp struct {
			Messages []api.MessageView `json:"messages"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/messages?"+q.Encode(), nil, &resp); err != nil {
			fmt.Fprintf(stderr, "relay: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tSTATUS\tTO\tCHANNELS")
		for _, m := range resp.Messages {
			var to, chans []string
			for _, d := range m.Deliveries {
				to = append(to, d.To)
				ch := d.Channel
				if ch == "" {
					ch = "-"
				}
				chans = append(chans, ch)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.CreatedAt.Local().Format("01-02 15:04:05"), m.Status, strings.Join(to, ","), strings.Join(chans, ","))
		}
		tw.Flush()
		return 0
	case "show", "retry", "cancel":
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "usage: relay queue %s ID\n", sub)
			return 2
		}
		id := url.PathEscape(fs.Arg(0))
		method, path := http.MethodGet, "/v1/messages/"+id
		if sub != "show" {
			method, path = http.MethodPost, path+"/"+sub
		}
		var m api.MessageView
		if err := c.do(ctx, method, path, nil, &m); err != nil {
			fmt.Fprintf(stderr, "relay: %v\n", err)
			return 1
		}
		printMessage(stdout, &m)
		return 0
	default:
		fmt.Fprintf(stderr, "relay: unknown queue command %q\n", sub)
		return 2
	}
}
