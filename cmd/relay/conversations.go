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

// cmdConversations lists customer conversations, or shows one.
func cmdConversations(args []string, stdout, stderr io.Writer) int {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("conversations "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	limit := fs.Int("limit", 20, "how many")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := newClient(*cfgPath, "read")
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	ctx, cancel := timeoutCtx(15 * time.Second)
	defer cancel()
	switch {
	case sub == "list" && fs.NArg() == 0:
		var resp struct {
			Conversations []api.ConversationView `json:"conversations"`
		}
		if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/conversations?limit=%d", *limit), nil, &resp); err != nil {
			fmt.Fprintf(stderr, "relay: %v\n", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TAG\tCHANNEL\tCUSTOMER\tSTATE\tLAST\tMESSAGE")
		for _, v := range resp.Conversations {
			state := v.State
			if v.Unanswered > 0 {
				state = fmt.Sprintf("open (%d)", v.Unanswered)
			}
			arrow := "←"
			if v.LastDirection == "out" {
				arrow = "→"
			}
			fmt.Fprintf(tw, "#%s\t%s\t%s\t%s\t%s\t%s %s\n", v.Tag, v.Channel, customerOf(v), state,
				v.LastAt.Local().Format("01-02 15:04"), arrow, oneLine(v.LastText, 50))
		}
		tw.Flush()
		return 0
	case sub == "show" && fs.NArg() == 1:
		var v api.ConversationView
		if err := c.do(ctx, http.MethodGet, "/v1/conversations/"+url.PathEscape(fs.Arg(0)), nil, &v); err != nil {
			fmt.Fprintf(stderr, "relay: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "#%s  %s  %s  %s  (id %s)\n", v.Tag, v.Channel, customerOf(v), v.State, v.ID)
		for _, m := range v.Messages {
			who, status := "customer", m.Status
			if m.Direction == "out" {
				who = "owner"
				if m.Auto {
					who = "auto-reply"
				}
			} else if m.Held != "" {
				status = "held: " + m.Held
			} else if m.ForwardStatus != "" {
				status = "forward " + m.ForwardStatus
			}
			fmt.Fprintf(stdout, "%s  %-10s  %-18s  %s\n", m.At.Local().Format("01-02 15:04"), who, status, m.Text)
		}
		return 0
	default:
		fmt.Fprintln(stderr, "usage: relay conversations [list] [--limit N] | show ID|TAG")
		return 2
	}
}

func customerOf(v api.ConversationView) string {
	if v.CustomerName != "" {
		return v.CustomerName
	}
	return v.CustomerID
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// cmdReply answers a customer on the channel they wrote from.
func cmdReply(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "usage: relay reply ID|TAG TEXT|-")
		return 2
	}
	text, err := textArg(fs.Arg(1), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "relay: reading stdin: %v\n", err)
		return 1
	}
	c, err := newClient(*cfgPath, "send")
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	ctx, cancel := timeoutCtx(15 * time.Second)
	defer cancel()
	tag := strings.TrimPrefix(fs.Arg(0), "#")
	var resp struct{ ID, Tag string }
	if err := c.do(ctx, http.MethodPost, "/v1/conversations/"+url.PathEscape(tag)+"/reply", map[string]string{"text": text}, &resp); err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "reply to #%s queued: %s (relay queue show %s)\n", resp.Tag, resp.ID, resp.ID)
	return 0
}
