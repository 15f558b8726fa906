package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

func TestEveryProblemAtOnce(t *testing.T) {
	src := `[server]
listen = "0.0.0.0:80"

[delivery]
ttl = "forever"
admin = "owner"

[channels.tg]
type = "fake"
token = "t"
colour = "red"

[channels.sms]
type = "sms"
sender = "x"

[contacts.mom]
route = ["tg", "email"]
tg = "123"
telgram = "456"
`
	ps := problemsOf(t, src)
	want := []string{
		`relay.toml:2: server.listen: "0.0.0.0:80" is reachable from other hosts but no [[server.tokens]] are configured: add a token or listen on 127.0.0.1 or a unix socket`,
		`relay.toml:5: delivery.ttl: invalid duration "forever": use a number with a unit such as "30s", "5m" or "24h"`,
		`relay.toml:6: delivery.admin: unknown contact "owner"`,
		`relay.toml:11: channels.tg.colour: unknown key "colour"`,
		`relay.toml:14: channels.sms.type: unknown channel type "sms": known types are ` + strings.Join(relay.Types(), ", "),
		`relay.toml:18: contacts.mom.route[1]: unknown channel "email"`,
		`relay.toml:20: contacts.mom.telgram: no channel named telgram`,
	}
	if got := strings.Split(ps.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoopbackListenNeedsNoTokens(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:8780", "127.0.0.2:1", "[::1]:8780", "localhost:8780", "unix:/run/relay/relay.sock"} {
		cfg := mustParse(t, "[server]\nlisten = \""+listen+"\"\n"+minimal)
		if cfg.Server.Listen != listen {
			t.Errorf("Listen = %q, want %q", cfg.Server.Listen, listen)
		}
	}
	cfg := mustParse(t, "[server]\nlisten = \"0.0.0.0:8780\"\n[[server.tokens]]\nname = \"web\"\nsecret = \"s\"\n"+minimal)
	if got := cfg.Server.Tokens; len(got) != 1 || got[0].Name != "web" || !reflect.DeepEqual(got[0].Scopes, []string{"send"}) {
		t.Errorf("tokens = %+v, want web with default scope send", got)
	}
}

func TestExplicitValues(t *testing.T) {
	cfg := mustParse(t, `
[server]
read_header_timeout = "3s"
[[server.tokens]]
name = "ops"
secret = "s"
scopes = ["read", "admin"]
send_to = ["mom", "group:family"]
[store]
dsn = "postgres://relay@db/relay"
synchronous = "normal"
[delivery]
ttl = "2h"
attempt_timeout = "3s"
retry_min = "1s"
retry_max = "1m"
rate_limit_wait = "0s"
shutdown_timeout = "20s"
workers = 2
admin = "mom"
[routing]
default = ["tg"]
[channels.tg]
type = "fake"
token = "t"
concurrency = 1
max_rate = 0.5
health = { interval = "1m", timeout = "2s", fall = 5, rise = 1 }
[contacts.mom]
tg = "123"
[groups]
family = ["mom"]
[inbound]
forward_to = ["mom"]
auto_reply = "thanks"
auto_reply_every = "1h"
max_length = 100
rate_per_hour = 0
form_token = "f"
`)
	if cfg.Server.ReadHeaderTimeout != 3*time.Second {
		t.Errorf("read_header_timeout = %v", cfg.Server.ReadHeaderTimeout)
	}
	tok := cfg.Server.Tokens[0]
	if !tok.HasScope("admin") || tok.HasScope("send") || !reflect.DeepEqual(tok.SendTo, []string{"mom", "group:family"}) {
		t.Errorf("token = %+v", tok)
	}
	if cfg.Store.DSN != "postgres://relay@db/relay" || cfg.Store.Path != "" || cfg.Store.Synchronous != "NORMAL" {
		t.Errorf("store = %+v", cfg.Store)
	}
	d := cfg.Delivery
	if d.TTL != 2*time.Hour || d.AttemptTimeout != 3*time.Second || d.RetryMin != time.Second || d.RetryMax != time.Minute ||
		d.RateLimitWait != 0 || d.ShutdownTimeout != 20*time.Second || d.Workers != 2 || d.Admin != "mom" {
		t.Errorf("delivery = %+v", d)
	}
	ch := cfg.Channels["tg"]
	if ch.Concurrency != 1 || ch.MaxRate != 0.5 || ch.Health != (Health{Interval: time.Minute, Timeout: 2 * time.Second, Fall: 5, Rise: 1}) {
		t.Errorf("channel = %+v", ch)
	}
	if got := cfg.Contacts["mom"].Route; !reflect.DeepEqual(got, []string{"tg"}) {
		t.Errorf("mom's route = %v, want routing.default", got)
	}
	in := cfg.Inbound
	if !reflect.DeepEqual(in.ForwardTo, []string{"mom"}) || in.AutoReply != "thanks" || in.AutoReplyEvery != time.Hour ||
		in.MaxLength != 100 || in.RatePerHour != 0 || in.FormToken != "f" {
		t.Errorf("inbound = %+v", in)
	}
}

func TestDefaultRouteIsFilteredToAddresses(t *testing.T) {
	cfg := mustParse(t, `
[routing]
default = ["a", "b", "c"]
[channels.c]
type = "plain"
[channels.b]
type = "plain"
[channels.a]
type = "plain"
[contacts.mom]
c = "mom-c"
a = "mom-a"
[contacts.dad]
route = ["c", "b"]
a = "dad-a"
b = "dad-b"
c = "dad-c"
[groups]
family = ["mom", "dad"]
`)
	if got := cfg.Contacts["mom"].Route; !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("mom's route = %v, want [a c]", got)
	}
	if got := cfg.ChannelOrder; !reflect.DeepEqual(got, []string{"c", "b", "a"}) {
		t.Errorf("ChannelOrder = %v, want file order [c b a]", got)
	}
	if got := cfg.ContactOrder; !reflect.DeepEqual(got, []string{"mom", "dad"}) {
		t.Errorf("ContactOrder = %v", got)
	}

	dir := cfg.Directory()
	names, err := dir.Resolve([]string{"group:family", "mom"})
	if err != nil || !reflect.DeepEqual(names, []string{"mom", "dad"}) {
		t.Fatalf("Resolve = %v, %v", names, err)
	}
	hops, err := dir.Route("dad", nil)
	if err != nil || len(hops) != 2 || hops[0].Channel != "c" || hops[0].Address != "dad-c" || hops[1].Channel != "b" {
		t.Errorf("Route(dad) = %+v, %v", hops, err)
	}
	// The directory is a copy: changing it leaves the config alone.
	dir.Contacts["dad"].Route[0] = "x"
	if cfg.Contacts["dad"].Route[0] != "c" {
		t.Error("Directory shares its route slices with the config")
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("RELAY_T_TOKEN", "tok-from-env")
	t.Setenv("RELAY_T_HOST", "api.example.com")
	t.Setenv("RELAY_T_TTL", "90m")
	t.Setenv("RELAY_T_CHAT", "4242")
	t.Setenv("RELAY_T_SECRET", "api-secret")
	cfg := mustParse(t, `
[[server.tokens]]
name = "web"
secret = "${RELAY_T_SECRET}"
[delivery]
ttl = "${RELAY_T_TTL}"
[channels.tg]
type = "fake"
token = "${RELAY_T_TOKEN}"
api_url = "https://${RELAY_T_HOST}/v1"
tags = ["a-${RELAY_T_CHAT}", "$HOME", "${not a var}"]
nested = { header = "X-${RELAY_T_HOST}" }
[contacts.mom]
route = ["tg"]
tg = "${RELAY_T_CHAT}"
`)
	s := cfg.Channels["tg"].Settings.(*fakeConfig)
	if s.Token != "tok-from-env" || s.APIURL != "https://api.example.com/v1" || s.Nested.Header != "X-api.example.com" {
		t.Errorf("settings = %+v", s)
	}
	if want := []string{"a-4242", "$HOME", "${not a var}"}; !reflect.DeepEqual(s.Tags, want) {
		t.Errorf("tags = %q, want %q (only ${NAME} expands)", s.Tags, want)
	}
	if cfg.Contacts["mom"].Addresses["tg"] != "4242" {
		t.Errorf("address = %q", cfg.Contacts["mom"].Addresses["tg"])
	}
	if cfg.Delivery.TTL != 90*time.Minute {
		t.Errorf("ttl = %v", cfg.Delivery.TTL)
	}
	if cfg.Server.Tokens[0].Secret != "api-secret" {
		t.Errorf("token secret not expanded")
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("bot", "bot-token\n")
	apiPath := write("api", "api-secret\r\n")
	multi := write("multi", "line1\nline2\n\n")
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	cfg := mustParse(t, `
[[server.tokens]]
name = "web"
secret_file = "`+apiPath+`"
[channels.tg]
type = "fake"
token_file = "${CREDENTIALS_DIRECTORY}/bot"
[channels.tg2]
type = "fake"
token_file = "`+multi+`"
[contacts.mom]
route = ["tg"]
tg = "1"
`)
	if got := cfg.Channels["tg"].Settings.(*fakeConfig).Token; got != "bot-token" {
		t.Errorf("token from file = %q, want bot-token", got)
	}
	if got := cfg.Channels["tg2"].Settings.(*fakeConfig).Token; got != "line1\nline2\n" {
		t.Errorf("token = %q: exactly one trailing newline is trimmed", got)
	}
	if got := cfg.Server.Tokens[0].Secret; got != "api-secret" {
		t.Errorf("secret from file = %q, want api-secret", got)
	}

	// A file's contents are not expanded, and never appear in problems.
	write("dollar", "${RELAY_T_UNSET}\n")
	cfg = mustParse(t, "[channels.tg]\ntype = \"fake\"\ntoken_file = \""+filepath.Join(dir, "dollar")+"\"\n[contacts.mom]\nroute = [\"tg\"]\ntg = \"1\"\n")
	if got := cfg.Channels["tg"].Settings.(*fakeConfig).Token; got != "${RELAY_T_UNSET}" {
		t.Errorf("token = %q, want the file's contents as they are", got)
	}
	ps := problemsOf(t, "[[server.tokens]]\nname = \"a\"\nsecret = \"inline-secret\"\nsecret_file = \""+apiPath+"\"\n")
	if s := ps.Error(); strings.Contains(s, "api-secret") || strings.Contains(s, "inline-secret") {
		t.Errorf("problems show a secret: %s", s)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.toml")
	if err := os.WriteFile(path, []byte(minimal+"[delivery]\nttl = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	ps, ok := AsProblems(err)
	if !ok || len(ps) != 1 || ps[0].Key != "delivery.ttl" || ps[0].Line != 10 {
		t.Fatalf("Load = %v, want one problem at delivery.ttl line 10", err)
	}
	if want := path + ":10: delivery.ttl: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}

	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("RELAY_CONFIG", "")
	if got := Find(""); got != "/etc/relay/relay.toml" {
		t.Errorf("no flag, env or ./relay.toml: Find = %q", got)
	}
	if err := os.WriteFile("relay.toml", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Find(""); got != "relay.toml" {
		t.Errorf("with ./relay.toml: Find = %q", got)
	}
	t.Setenv("RELAY_CONFIG", "/srv/relay.toml")
	if got := Find(""); got != "/srv/relay.toml" {
		t.Errorf("with $RELAY_CONFIG: Find = %q", got)
	}
	if got := Find("my.toml"); got != "my.toml" {
		t.Errorf("with -c: Find = %q", got)
	}
}

// A table that fails to decode is one problem, not a cascade of unknown
// channels and contacts wherever it is named.
func TestBrokenTablesDoNotCascade(t *testing.T) {
	ps := problemsOf(t, `[channels.tg]
type = "fake"
token = "t"
health = "often"
[contacts.mom]
route = ["tg"]
tg = 5
[contacts.dad]
route = 3
[groups]
family = ["mom"]
[delivery]
admin = "dad"
`)
	want := []string{
		`relay.toml:4: channels.tg.health: wrong type: got a string, want a table`,
		`relay.toml:7: contacts.mom.tg: wrong type: got an integer, want a string`,
		`relay.toml:9: contacts.dad.route: wrong type: got an integer, want an array`,
	}
	if got := strings.Split(ps.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
