// Command relay is the daemon and its command line: `relay serve` runs it;
// the other subcommands talk to the running daemon's API.
package main

import (
	"fmt"
	"io"
	"os"

	// The channel types built into this binary.
	_ "github.com/relay-project/relay/adapters/console"
	_ "github.com/relay-project/relay/adapters/email"
	_ "github.com/relay-project/relay/adapters/kakao"
	_ "github.com/relay-project/relay/adapters/line"
	_ "github.com/relay-project/relay/adapters/ntfy"
	_ "github.com/relay-project/relay/adapters/sms"
	_ "github.com/relay-project/relay/adapters/telegram"
	_ "github.com/relay-project/relay/adapters/webhook"
	_ "github.com/relay-project/relay/adapters/whatsapp"

	// Time zones for SMS budgets (budget_timezone) on boxes without tzdata.
	_ "time/tzdata"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `relay: deliver messages over whichever messenger works right now.

Usage:
  relay serve   [-c FILE]                 run the daemon
  relay check   [-c FILE]                 validate the configuration
  relay send    [-c FILE] --to NAME [--subject S] [--wait] TEXT|-
  relay status  [-c FILE]                 channels and queue at a glance
  relay queue   [-c FILE] list [--status S] | show ID | retry ID | cancel ID
  relay conversations [-c FILE] [list] [--limit N] | show ID|TAG
                                          customer conversations, newest first
  relay reply   [-c FILE] ID|TAG TEXT|-   answer a customer on the channel they used
  relay whatsapp link [-c FILE] [--channel NAME] [--phone NUMBER]
  relay whatsapp unlink [-c FILE] [--channel NAME]
  relay kakao login [-c FILE] [--channel NAME]
  relay version

The configuration is -c FILE, else $RELAY_CONFIG, else ./relay.toml, else
/etc/relay/relay.toml. Client commands use $RELAY_TOKEN, else a token from
the configuration, and $RELAY_ADDR to override the daemon's address.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "send":
		return cmdSend(rest, stdin, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "queue":
		return cmdQueue(rest, stdout, stderr)
	case "conversations":
		return cmdConversations(rest, stdout, stderr)
	case "reply":
		return cmdReply(rest, stdin, stdout, stderr)
	case "whatsapp":
		return cmdWhatsApp(rest, stdout, stderr)
	case "kakao":
		return cmdKakao(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "relay", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "relay: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}
