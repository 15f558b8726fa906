package config

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/relay-project/relay/relay"
)

var (
	channelNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// adapterKeyRE matches the key an adapter's Validate error starts with.
	adapterKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(?:\[[0-9]+\])?(?:\.[A-Za-z0-9_-]+(?:\[[0-9]+\])?)*$`)
)

// checkChannel checks the daemon-owned keys of one channel.
func (l *loader) checkChannel(key string, ch *Channel) {
	if ch.Concurrency < 1 {
		l.c.add(key+".concurrency", "must be at least 1, not %d", ch.Concurrency)
	}
	if ch.MaxRate < 0 {
		l.c.add(key+".max_rate", "must be 0 (no cap) or more, not %g", ch.MaxRate)
	}
	h := ch.Health
	if h.Interval <= 0 {
		l.c.add(key+".health.interval", "must be more than 0")
	}
	if h.Timeout <= 0 {
		l.c.add(key+".health.timeout", "must be more than 0")
	}
	if h.Fall < 1 {
		l.c.add(key+".health.fall", "must be at least 1, not %d", h.Fall)
	}
	if h.Rise < 1 {
		l.c.add(key+".health.rise", "must be at least 1, not %d", h.Rise)
	}
}

// validate checks what needs the whole file: references between sections,
// routes, tokens, the listen address.
func (l *loader) validate(rst *rawStore) {
	cfg := l.cfg
	c := l.c

	// store
	switch {
	case cfg.Store.DSN != "" && rst.Path != nil:
		c.add("store.dsn", "store.path and store.dsn are both set: use one (path for SQLite, dsn for PostgreSQL)")
	case cfg.Store.DSN == "" && cfg.Store.Path == "":
		if rst.Path != nil {
			c.add("store.path", "must not be empty")
		}
		cfg.Store.Path = DefaultStorePath
	}
	if cfg.Store.DSN != "" && !strings.HasPrefix(cfg.Store.DSN, "postgres://") && !strings.HasPrefix(cfg.Store.DSN, "postgresql://") {
		// Key=value DSNs are valid for pgx too; only the URL forms are
		// checked for their scheme.
		if strings.Contains(cfg.Store.DSN, "://") {
			c.add("store.dsn", "must be a PostgreSQL URL (postgres://...)")
		}
	}
	if s := cfg.Store.Synchronous; s != "FULL" && s != "NORMAL" {
		c.add("store.synchronous", "must be FULL or NORMAL, not %q", rst.Synchronous)
	}

	// delivery
	d := &cfg.Delivery
	if d.TTL <= 0 {
		c.add("delivery.ttl", "must be more than 0")
	}
	if d.AttemptTimeout <= 0 {
		c.add("delivery.attempt_timeout", "must be more than 0")
	}
	if d.RetryMin <= 0 {
		c.add("delivery.retry_min", "must be more than 0")
	}
	if d.RetryMax <= 0 {
		c.add("delivery.retry_max", "must be more than 0")
	}
	if d.RetryMin > d.RetryMax {
		c.add("delivery.retry_min", "%s is more than retry_max %s", d.RetryMin, d.RetryMax)
	}
	if d.RateLimitWait < 0 {
		c.add("delivery.rate_limit_wait", "must not be negative")
	}
	if d.ShutdownTimeout <= 0 {
		c.add("delivery.shutdown_timeout", "must be more than 0")
	}
	if d.Workers < 1 {
		c.add("delivery.workers", "must be at least 1, not %d", d.Workers)
	}
	if cfg.Server.ReadHeaderTimeout <= 0 {
		c.add("server.read_header_timeout", "must be more than 0")
	}

	// routing.default
	l.checkRoute("routing.default", cfg.Routing.Default)

	l.resolveContacts()
	l.checkGroups()

	if d.Admin != "" {
		if _, ok := cfg.Contacts[d.Admin]; !ok {
			c.add("delivery.admin", "unknown contact %q", d.Admin)
		}
	}
	for i, name := range cfg.Inbound.ForwardTo {
		if _, ok := cfg.Contacts[name]; !ok {
			c.add("inbound.forward_to["+strconv.Itoa(i)+"]", "unknown contact %q", name)
		}
	}
	if cfg.Inbound.MaxLength < 1 {
		c.add("inbound.max_length", "must be at least 1, not %d", cfg.Inbound.MaxLength)
	}
	if cfg.Inbound.RatePerHour < 0 {
		c.add("inbound.rate_per_hour", "must be 0 (no cap) or more, not %d", cfg.Inbound.RatePerHour)
	}
	if cfg.Inbound.AutoReplyEvery <= 0 {
		c.add("inbound.auto_reply_every", "must be more than 0")
	}

	l.checkTokens()
	l.checkListen()
}

// checkRoute reports unknown and repeated channels in a route.
func (l *loader) checkRoute(key string, route []string) {
	seen := map[string]bool{}
	for i, ch := range route {
		k := key + "[" + strconv.Itoa(i) + "]"
		if _, ok := l.cfg.Channels[ch]; !ok {
			l.c.add(k, "unknown channel %q", ch)
		} else if seen[ch] {
			l.c.add(k, "channel %q is listed twice", ch)
		}
		seen[ch] = true
	}
}

// resolveContacts checks addresses and routes and fills in default routes.
func (l *loader) resolveContacts() {
	cfg := l.cfg
	for _, name := range cfg.ContactOrder {
		ct := cfg.Contacts[name]
		key := joinKey("contacts", name)
		if l.brokenContact[name] {
			continue
		}
		for _, ch := range sortedKeys(ct.Addresses) {
			addr := ct.Addresses[ch]
			akey := joinKey(key, ch)
			if strings.TrimSpace(addr) == "" {
				l.c.add(akey, "empty address")
				continue
			}
			if !l.channelOK[ch] {
				continue
			}
			if v, ok := cfg.Channels[ch].Settings.(relay.AddressValidator); ok {
				if err := v.ValidateAddress(addr); err != nil {
					l.c.add(akey, "invalid %s address: %v", ch, err)
				}
			}
		}
		if l.routeGiven[name] {
			rkey := key + ".route"
			l.checkRoute(rkey, ct.Route)
			for i, ch := range ct.Route {
				if _, known := cfg.Channels[ch]; !known {
					continue
				}
				if _, ok := ct.Addresses[ch]; !ok {
					l.c.add(rkey+"["+strconv.Itoa(i)+"]", "no %s address for %s: add %s = \"...\" to [%s]", ch, name, toml1(ch), key)
				}
			}
			if len(ct.Route) == 0 {
				l.c.add(rkey, "empty route: name at least one channel")
			}
			continue
		}
		for _, ch := range cfg.Routing.Default {
			if _, ok := ct.Addresses[ch]; ok && !contains(ct.Route, ch) {
				ct.Route = append(ct.Route, ch)
			}
		}
		if len(ct.Route) == 0 {
			if len(cfg.Routing.Default) == 0 {
				l.c.add(key, "no route: set route, or set routing.default")
			} else {
				l.c.add(key, "no route: routing.default (%s) has no channel with an address for %s; set route or add an address", strings.Join(cfg.Routing.Default, ", "), name)
			}
		}
	}
}

func (l *loader) checkGroups() {
	cfg := l.cfg
	for _, g := range sortedKeys(cfg.Groups) {
		key := joinKey("groups", g)
		if _, clash := cfg.Contacts[g]; clash {
			l.c.add(key, "%q is both a group and a contact: rename one", g)
		}
		members := cfg.Groups[g]
		if len(members) == 0 {
			l.c.add(key, "empty group")
		}
		for i, m := range members {
			if _, ok := cfg.Contacts[m]; !ok {
				l.c.add(key+"["+strconv.Itoa(i)+"]", "unknown contact %q", m)
			}
		}
	}
}

func (l *loader) checkTokens() {
	cfg := l.cfg
	names := map[string]int{}
	secrets := map[string]int{}
	for i, tok := range cfg.Server.Tokens {
		key := "server.tokens[" + strconv.Itoa(i) + "]"
		if tok.Name == "" {
			l.c.add(key+".name", "required")
		} else if j, dup := names[tok.Name]; dup {
			l.c.add(key+".name", "token name %q is also used by server.tokens[%d]", tok.Name, j)
		} else {
			names[tok.Name] = i
		}
		if tok.Secret == "" {
			l.c.add(key+".secret", "required: set secret or secret_file")
		} else if j, dup := secrets[tok.Secret]; dup {
			l.c.add(key+".secret", "same secret as server.tokens[%d]: each client needs its own", j)
		} else {
			secrets[tok.Secret] = i
		}
		if len(tok.Scopes) == 0 {
			l.c.add(key+".scopes", "empty: name at least one of send, read, admin")
		}
		for j, s := range tok.Scopes {
			switch s {
			case ScopeSend, ScopeRead, ScopeAdmin:
			default:
				l.c.add(key+".scopes["+strconv.Itoa(j)+"]", "unknown scope %q: use send, read or admin", s)
			}
		}
		for j, to := range tok.SendTo {
			k := key + ".send_to[" + strconv.Itoa(j) + "]"
			if g, ok := strings.CutPrefix(to, relay.GroupPrefix); ok {
				if _, ok := cfg.Groups[g]; !ok {
					l.c.add(k, "unknown group %q", g)
				}
			} else if _, ok := cfg.Contacts[to]; !ok {
				l.c.add(k, "unknown contact %q", to)
			}
		}
	}
}

// checkListen checks the listen address and refuses to serve a
// non-loopback TCP address without tokens.
func (l *loader) checkListen() {
	listen := l.cfg.Server.Listen
	if p, ok := strings.CutPrefix(listen, "unix:"); ok {
		if p == "" {
			l.c.add("server.listen", "unix: needs a socket path, as in \"unix:/run/relay/relay.sock\"")
		}
		return
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		l.c.add("server.listen", "invalid address %q: use \"host:port\" or \"unix:/path\"", listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		l.c.add("server.listen", "invalid port %q", port)
	}
	if len(l.cfg.Server.Tokens) == 0 && !IsLoopback(host) {
		l.c.add("server.listen", "%q is reachable from other hosts but no [[server.tokens]] are configured: add a token or listen on 127.0.0.1 or a unix socket", listen)
	}
}

// IsLoopback reports whether host (from a listen address) is loopback only:
// "localhost", 127.0.0.0/8 or ::1. An empty host means every interface.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// toml1 quotes a key for a TOML snippet in a message when it needs it.
func toml1(k string) string { return joinKey("", k) }
