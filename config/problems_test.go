package config

import (
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

// tg and momTG are valid pieces the cases build on.
const tg = `[channels.tg]
type = "fake"
token = "t"
`

func TestProblems(t *testing.T) {
	// Other test files may register more adapter types.
	known := strings.Join(relay.Types(), ", ")
	cases := []struct {
		name string
		src  string
		key  string
		line int
		msg  string // a substring of the problem's message
	}{
		{"syntax error", "[server]\nlisten = \"x\nfoo = 1\n", "", 2, ""},
		{"wrong type", "[server]\nlisten = 8780\n", "server.listen", 2, "wrong type: got an integer, want a string"},
		{"unknown top-level key", tg + "\n[servr]\nlisten = \"x\"\n", "servr", 5, `unknown key "servr"`},
		{"unknown nested table", tg + "[server.extra.deep]\nx = 1\n", "server.extra", 4, `unknown key "extra"`},
		{"unknown key in table", tg + "[delivery]\nttl = \"1h\"\nttll = \"2h\"\n", "delivery.ttll", 6, `unknown key "ttll"`},
		{"unknown key in adapter table", tg + "tokn = \"x\"\n", "channels.tg.tokn", 4, `unknown key "tokn"`},
		{"unknown key in health", tg + "health = { interval = \"10s\", falls = 2 }\n", "channels.tg.health.falls", 4, `unknown key "falls"`},
		{"unknown key in second token", "[[server.tokens]]\nname = \"a\"\nsecret = \"s1\"\n[[server.tokens]]\nname = \"b\"\nsecret = \"s2\"\nscope = [\"read\"]\n",
			"server.tokens[1].scope", 7, `unknown key "scope"`},
		{"bad channel name", "[channels.\"tele gram\"]\ntype = \"fake\"\ntoken = \"t\"\n", `channels."tele gram"`, 1, "invalid channel name"},
		{"unknown type", "[channels.tg]\ntype = \"sms\"\n", "channels.tg.type", 2, `unknown channel type "sms": known types are ` + known},
		{"missing type", "[channels.tg]\ntoken = \"t\"\n", "channels.tg.type", 1, "required: one of " + known},
		{"adapter Validate missing key", "[channels.tg]\ntype = \"fake\"\n", "channels.tg.token", 1, "required"},
		{"adapter Validate present key", tg + "api_url = \"ftp://x\"\n", "channels.tg.api_url", 4, "must be an http(s) URL"},
		{"adapter type error", tg + "tags = \"a\"\n", "channels.tg.tags", 4, "wrong type"},
		{"bad duration", tg + "[delivery]\nretry_max = \"5 minutes\"\n", "delivery.retry_max", 5, `invalid duration "5 minutes"`},
		{"duration as integer", tg + "[delivery]\nttl = 3600\n", "delivery.ttl", 5, "want a duration string"},
		{"bad health duration", tg + "health = { timeout = \"5\" }\n", "channels.tg.health.timeout", 4, "invalid duration"},
		{"health interval zero", tg + "[channels.tg.health]\ninterval = \"0s\"\n", "channels.tg.health.interval", 5, "more than 0"},
		{"health fall zero", tg + "health = { fall = 0 }\n", "channels.tg.health.fall", 4, "at least 1"},
		{"health rise zero", tg + "health.rise = 0\n", "channels.tg.health.rise", 4, "at least 1"},
		{"concurrency zero", tg + "concurrency = 0\n", "channels.tg.concurrency", 4, "at least 1"},
		{"max_rate negative", tg + "max_rate = -1\n", "channels.tg.max_rate", 4, "0 (no cap) or more"},
		{"routing.default unknown channel", tg + "[routing]\ndefault = [\"tg\", \"kakao\"]\n", "routing.default[1]", 5, `unknown channel "kakao"`},
		{"route unknown channel", tg + "[contacts.mom]\nroute = [\"sms\", \"tg\"]\ntg = \"1\"\n", "contacts.mom.route[0]", 5, `unknown channel "sms"`},
		{"route channel twice", tg + "[contacts.mom]\nroute = [\"tg\", \"tg\"]\ntg = \"1\"\n", "contacts.mom.route[1]", 5, "listed twice"},
		{"route channel without address", tg + "[channels.tg2]\ntype = \"fake\"\ntoken = \"u\"\n[contacts.mom]\nroute = [\"tg\", \"tg2\"]\ntg = \"1\"\n",
			"contacts.mom.route[1]", 8, "no tg2 address for mom"},
		{"contact key not a channel", tg + "[contacts.mom]\nroute = [\"tg\"]\ntg = \"1\"\ntelgram = \"2\"\n", "contacts.mom.telgram", 7, "no channel named telgram"},
		{"address rejected by adapter", tg + "[contacts.mom]\nroute = [\"tg\"]\ntg = \"@mom\"\n", "contacts.mom.tg", 6, "must be a numeric chat id"},
		{"empty address", tg + "[contacts.mom]\nroute = [\"tg\"]\ntg = \"\"\n", "contacts.mom.tg", 6, "empty address"},
		{"empty route", tg + "[contacts.mom]\nroute = []\ntg = \"1\"\n", "contacts.mom.route", 5, "empty route"},
		{"no usable default route", tg + "[channels.p]\ntype = \"plain\"\n[routing]\ndefault = [\"tg\"]\n[contacts.mom]\np = \"x\"\n",
			"contacts.mom", 8, "no route"},
		{"no route and no default", tg + "[contacts.mom]\ntg = \"1\"\n", "contacts.mom", 4, "no route"},
		{"group member unknown", tg + "[contacts.mom]\nroute = [\"tg\"]\ntg = \"1\"\n[groups]\nfamily = [\"mom\", \"dad\"]\n", "groups.family[1]", 8, `unknown contact "dad"`},
		{"group named like a contact", tg + "[contacts.mom]\nroute = [\"tg\"]\ntg = \"1\"\n[groups]\nmom = [\"mom\"]\n", "groups.mom", 8, "both a group and a contact"},
		{"admin not a contact", tg + "[delivery]\nadmin = \"owner\"\n", "delivery.admin", 5, `unknown contact "owner"`},
		{"forward_to not a contact", tg + "[inbound]\nforward_to = [\"owner\"]\n", "inbound.forward_to[0]", 5, `unknown contact "owner"`},
		{"retry_min above retry_max", tg + "[delivery]\nretry_min = \"10m\"\nretry_max = \"5m\"\n", "delivery.retry_min", 5, "more than retry_max"},
		{"ttl zero", tg + "[delivery]\nttl = \"0s\"\n", "delivery.ttl", 5, "more than 0"},
		{"workers zero", tg + "[delivery]\nworkers = 0\n", "delivery.workers", 5, "at least 1"},
		{"store path and dsn", "[store]\npath = \"a.db\"\ndsn = \"postgres://x/y\"\n", "store.dsn", 3, "both set"},
		{"store synchronous", "[store]\nsynchronous = \"OFF\"\n", "store.synchronous", 2, "FULL or NORMAL"},
		{"listen public without tokens", "[server]\nlisten = \"0.0.0.0:8780\"\n", "server.listen", 2, "no [[server.tokens]]"},
		{"listen all interfaces without tokens", "[server]\nlisten = \":8780\"\n", "server.listen", 2, "no [[server.tokens]]"},
		{"listen malformed", "[server]\nlisten = \"localhost\"\n", "server.listen", 2, "invalid address"},
		{"token duplicate name", "[[server.tokens]]\nname = \"a\"\nsecret = \"1\"\n[[server.tokens]]\nname = \"a\"\nsecret = \"2\"\n", "server.tokens[1].name", 5, "also used by server.tokens[0]"},
		{"token empty secret", "[[server.tokens]]\nname = \"a\"\nsecret = \"\"\n", "server.tokens[0].secret", 3, "required"},
		{"token missing secret", "[[server.tokens]]\nname = \"a\"\n", "server.tokens[0].secret", 1, "required"},
		{"token duplicate secret", "[[server.tokens]]\nname = \"a\"\nsecret = \"s\"\n[[server.tokens]]\nname = \"b\"\nsecret = \"s\"\n", "server.tokens[1].secret", 6, "same secret as server.tokens[0]"},
		{"token bad scope", "[[server.tokens]]\nname = \"a\"\nsecret = \"s\"\nscopes = [\"send\", \"root\"]\n", "server.tokens[0].scopes[1]", 4, `unknown scope "root"`},
		{"token send_to unknown contact", "[[server.tokens]]\nname = \"a\"\nsecret = \"s\"\nsend_to = [\"owner\"]\n", "server.tokens[0].send_to[0]", 4, `unknown contact "owner"`},
		{"token send_to unknown group", "[[server.tokens]]\nname = \"a\"\nsecret = \"s\"\nsend_to = [\"group:family\"]\n", "server.tokens[0].send_to[0]", 4, `unknown group "family"`},
		{"unset env var", tg + "api_url = \"${RELAY_TEST_UNSET_VAR}/x\"\n", "channels.tg.api_url", 4, "environment variable RELAY_TEST_UNSET_VAR is not set"},
		{"unset env var in address", tg + "[contacts.mom]\nroute = [\"tg\"]\ntg = \"${RELAY_TEST_UNSET_VAR}\"\n", "contacts.mom.tg", 6, "RELAY_TEST_UNSET_VAR is not set"},
		{"secret and secret_file", "[[server.tokens]]\nname = \"a\"\nsecret = \"s\"\nsecret_file = \"/nonexistent\"\n", "server.tokens[0].secret_file", 4, "secret and secret_file are both set"},
		{"token and token_file", tg + "token_file = \"/nonexistent\"\n", "channels.tg.token_file", 4, "token and token_file are both set"},
		{"unreadable token_file", "[channels.tg]\ntype = \"fake\"\ntoken_file = \"/nonexistent/relay-secret\"\n", "channels.tg.token_file", 3, "/nonexistent/relay-secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := problemsOf(t, tc.src)
			for _, p := range ps {
				if p.Key == tc.key && p.Line == tc.line && strings.Contains(p.Msg, tc.msg) {
					if p.File != "relay.toml" {
						t.Errorf("File = %q, want relay.toml", p.File)
					}
					return
				}
			}
			t.Errorf("no problem with key %q, line %d, message containing %q; got:\n%v", tc.key, tc.line, tc.msg, ps)
		})
	}
}
