package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relay-project/relay/relay/api"
)

// cmdStatus prints channels and queue at a glance.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := newClient(*cfgPath, "read")
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	ctx, cancel := timeoutCtx(10 * time.Second)
	defer cancel()
	var resp struct {
		Channels []api.ChannelView `json:"channels"`
		Queue    map[string]int    `json:"queue"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/channels", nil, &resp); err != nil {
		fmt.Fprintf(stderr, "relay: status: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tTYPE\tSTATE\tSINCE\tDETAIL")
	for _, ch := range resp.Channels {
		detail := ch.LastError
		if ch.Reason != "" {
			detail = ch.Reason
		}
		if !ch.BlockedUntil.IsZero() && ch.BlockedUntil.After(time.Now()) {
			detail = strings.TrimSpace(detail + " rate-limited until " + ch.BlockedUntil.Local().Format(time.TimeOnly))
		}
		if ch.Account != "" {
			detail = strings.TrimSpace("account " + ch.Account + " " + detail)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ch.Name, ch.Type, ch.State, ago(ch.Since), detail)
	}
	tw.Flush()
	q := resp.Queue
	fmt.Fprintf(stdout, "\nqueue: %d queued, %d sending; %d delivered, %d expired, %d failed, %d cancelled\n",
		q["queued"], q["sending"], q["delivered"], q["expired"], q["failed"], q["cancelled"])
	return 0
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	return t.Local().Format("01-02 15:04:05") + " (" + d.String() + " ago)"
}
