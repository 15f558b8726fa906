package config

import (
	"errors"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/relay-project/relay/relay"
)

// duration keeps a duration's TOML value as written, so that a bad one is
// a problem naming its key instead of an error that stops decoding.
type duration struct {
	set bool
	raw any
}

// UnmarshalTOML implements toml.Unmarshaler; it never fails.
func (d *duration) UnmarshalTOML(v any) error {
	d.set, d.raw = true, v
	return nil
}

// The raw tables, as written. Every top-level table is a Primitive so that
// a type error in one is a problem in that table, and decoding goes on.
type rawFile struct {
	Server   toml.Primitive `toml:"server"`
	Store    toml.Primitive `toml:"store"`
	Delivery toml.Primitive `toml:"delivery"`
	Routing  toml.Primitive `toml:"routing"`
	Channels toml.Primitive `toml:"channels"`
	Contacts toml.Primitive `toml:"contacts"`
	Groups   toml.Primitive `toml:"groups"`
	Inbound  toml.Primitive `toml:"inbound"`
}

type rawServer struct {
	Listen            *string          `toml:"listen"`
	Tokens            []toml.Primitive `toml:"tokens"`
	ReadHeaderTimeout duration         `toml:"read_header_timeout"`
}

type rawToken struct {
	Name       string    `toml:"name"`
	Secret     string    `toml:"secret"`
	SecretFile string    `toml:"secret_file"`
	SendTo     []string  `toml:"send_to"`
	Scopes     *[]string `toml:"scopes"`
}

type rawStore struct {
	Path        *string `toml:"path"`
	DSN         string  `toml:"dsn"`
	DSNFile     string  `toml:"dsn_file"` // the DSN may hold a password
	Synchronous string  `toml:"synchronous"`
}

type rawDelivery struct {
	TTL             duration `toml:"ttl"`
	AttemptTimeout  duration `toml:"attempt_timeout"`
	RetryMin        duration `toml:"retry_min"`
	RetryMax        duration `toml:"retry_max"`
	RateLimitWait   duration `toml:"rate_limit_wait"`
	ShutdownTimeout duration `toml:"shutdown_timeout"`
	Admin           string   `toml:"admin"`
	Workers         *int     `toml:"workers"`
}

type rawRouting struct {
	Default []string `toml:"default"`
}

type rawInbound struct {
	ForwardTo      []string `toml:"forward_to"`
	AutoReply      string   `toml:"auto_reply"`
	AutoReplyEvery duration `toml:"auto_reply_every"`
	MaxLength      *int     `toml:"max_length"`
	RatePerHour    *int     `toml:"rate_per_hour"`
	FormToken      string   `toml:"form_token"`
	FormTokenFile  string   `toml:"form_token_file"`
}

// rawChannel holds the keys of [channels.NAME] that the daemon owns; the
// rest of the table is the adapter's.
type rawChannel struct {
	Type        string    `toml:"type"`
	Health      rawHealth `toml:"health"`
	Concurrency *int      `toml:"concurrency"`
	MaxRate     *float64  `toml:"max_rate"`
}

type rawHealth struct {
	Interval duration `toml:"interval"`
	Timeout  duration `toml:"timeout"`
	Fall     *int     `toml:"fall"`
	Rise     *int     `toml:"rise"`
}

// loader turns one file into a Config, collecting problems on the way.
type loader struct {
	c   *collector
	cfg *Config
	md  toml.MetaData

	// routeGiven records contacts with their own route key.
	routeGiven map[string]bool
	// brokenContact records contacts whose table did not decode.
	brokenContact map[string]bool
	// channelOK records channels of a known type whose settings decoded.
	channelOK map[string]bool
}

func (l *loader) load(data []byte) {
	var raw rawFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			l.c.addAt("", pe.Position.Line, pe.Message)
		} else {
			l.c.decodeError("", "", err)
		}
		return
	}
	l.md = md
	cfg := l.cfg

	var rs rawServer
	l.decode(raw.Server, "server", &rs)
	var rst rawStore
	l.decode(raw.Store, "store", &rst)
	var rd rawDelivery
	l.decode(raw.Delivery, "delivery", &rd)
	var rr rawRouting
	l.decode(raw.Routing, "routing", &rr)
	var ri rawInbound
	l.decode(raw.Inbound, "inbound", &ri)

	cfg.Server.Listen = DefaultListen
	if rs.Listen != nil {
		cfg.Server.Listen = *rs.Listen
	}
	cfg.Server.ReadHeaderTimeout = l.duration("server.read_header_timeout", rs.ReadHeaderTimeout, DefaultReadHeaderTimeout)

	cfg.Store.DSN = rst.DSN
	cfg.Store.Synchronous = strings.ToUpper(rst.Synchronous)
	if cfg.Store.Synchronous == "" {
		cfg.Store.Synchronous = DefaultSynchronous
	}
	if rst.Path != nil {
		cfg.Store.Path = *rst.Path
	}

	cfg.Delivery.TTL = l.duration("delivery.ttl", rd.TTL, DefaultTTL)
	cfg.Delivery.AttemptTimeout = l.duration("delivery.attempt_timeout", rd.AttemptTimeout, DefaultAttemptTimeout)
	cfg.Delivery.RetryMin = l.duration("delivery.retry_min", rd.RetryMin, DefaultRetryMin)
	cfg.Delivery.RetryMax = l.duration("delivery.retry_max", rd.RetryMax, DefaultRetryMax)
	cfg.Delivery.RateLimitWait = l.duration("delivery.rate_limit_wait", rd.RateLimitWait, DefaultRateLimitWait)
	cfg.Delivery.ShutdownTimeout = l.duration("delivery.shutdown_timeout", rd.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.Delivery.Admin = rd.Admin
	cfg.Delivery.Workers = intOr(rd.Workers, DefaultWorkers)

	cfg.Routing.Default = rr.Default

	cfg.Inbound.ForwardTo = ri.ForwardTo
	cfg.Inbound.AutoReply = ri.AutoReply
	cfg.Inbound.AutoReplyEvery = l.duration("inbound.auto_reply_every", ri.AutoReplyEvery, DefaultAutoReplyEvery)
	cfg.Inbound.MaxLength = intOr(ri.MaxLength, DefaultInboundMaxLength)
	cfg.Inbound.RatePerHour = intOr(ri.RatePerHour, DefaultInboundPerHour)
	cfg.Inbound.FormToken = ri.FormToken

	for i, prim := range rs.Tokens {
		key := "server.tokens[" + strconv.Itoa(i) + "]"
		var rt rawToken
		if !l.decodeAt(prim, "server.tokens", key, &rt) {
			continue
		}
		l.c.expandValue(key, reflect.ValueOf(&rt))
		tok := Token{Name: rt.Name, Secret: rt.Secret, SendTo: rt.SendTo, Scopes: []string{ScopeSend}}
		if rt.Scopes != nil {
			tok.Scopes = *rt.Scopes
		}
		cfg.Server.Tokens = append(cfg.Server.Tokens, tok)
	}

	l.loadChannels(raw.Channels)
	l.loadContacts(raw.Contacts)
	var groups map[string][]string
	if l.decode(raw.Groups, "groups", &groups) {
		l.c.expandValue("groups", reflect.ValueOf(&groups))
	}
	cfg.Groups = groups
	if cfg.Groups == nil {
		cfg.Groups = map[string][]string{}
	}

	l.validate(&rst)
	l.unknownKeys()
}

// decode decodes a top-level table. It reports a decode error as a problem
// and returns false; on success it expands ${ENV} and X_file in v.
func (l *loader) decode(prim toml.Primitive, key string, v any) bool {
	if !l.decodeAt(prim, key, key, v) {
		return false
	}
	l.c.expandValue(key, reflect.ValueOf(v))
	return true
}

// decodeAt decodes prim into v; plain is the table's key as BurntSushi
// names it, key as problems name it (with array indexes).
func (l *loader) decodeAt(prim toml.Primitive, plain, key string, v any) bool {
	if err := l.md.PrimitiveDecode(prim, v); err != nil {
		l.c.decodeError(plain, key, err)
		return false
	}
	return true
}

// duration turns a raw duration into a time.Duration, or def when unset.
func (l *loader) duration(key string, d duration, def time.Duration) time.Duration {
	if !d.set {
		return def
	}
	s, ok := d.raw.(string)
	if !ok {
		l.c.add(key, "wrong type: want a duration string such as \"30s\" or \"24h\"")
		return def
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		l.c.add(key, "invalid duration %q: use a number with a unit such as \"30s\", \"5m\" or \"24h\"", s)
		return def
	}
	return v
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// order returns the names of the tables under parent in file order.
func (l *loader) order(parent string, names map[string]toml.Primitive) []string {
	out := make([]string, 0, len(names))
	seen := map[string]bool{}
	for _, k := range l.md.Keys() {
		if len(k) == 2 && k[0] == parent && !seen[k[1]] {
			if _, ok := names[k[1]]; ok {
				seen[k[1]] = true
				out = append(out, k[1])
			}
		}
	}
	var rest []string
	for name := range names {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func (l *loader) loadChannels(prim toml.Primitive) {
	cfg := l.cfg
	cfg.Channels = map[string]*Channel{}
	l.channelOK = map[string]bool{}
	var tables map[string]toml.Primitive
	if !l.decodeAt(prim, "channels", "channels", &tables) {
		return
	}
	for _, name := range l.order("channels", tables) {
		key := joinKey("channels", name)
		if !channelNameRE.MatchString(name) {
			l.c.add(key, "invalid channel name %q: use letters, digits, '-' and '_'", name)
		}
		var rc rawChannel
		if !l.decodeAt(tables[name], key, key, &rc) {
			// Known by name, so that routes naming it are not reported too.
			cfg.Channels[name] = &Channel{Name: name}
			cfg.ChannelOrder = append(cfg.ChannelOrder, name)
			continue
		}
		l.c.expandValue(key, reflect.ValueOf(&rc))
		ch := &Channel{
			Name:        name,
			Type:        rc.Type,
			Concurrency: intOr(rc.Concurrency, DefaultConcurrency),
			Health: Health{
				Interval: l.duration(key+".health.interval", rc.Health.Interval, DefaultHealthInterval),
				Timeout:  l.duration(key+".health.timeout", rc.Health.Timeout, DefaultHealthTimeout),
				Fall:     intOr(rc.Health.Fall, DefaultHealthFall),
				Rise:     intOr(rc.Health.Rise, DefaultHealthRise),
			},
		}
		if rc.MaxRate != nil {
			ch.MaxRate = *rc.MaxRate
		}
		cfg.Channels[name] = ch
		cfg.ChannelOrder = append(cfg.ChannelOrder, name)
		l.checkChannel(key, ch)

		f, ok := relay.Lookup(rc.Type)
		switch {
		case rc.Type == "":
			l.c.add(key+".type", "required: one of %s", knownTypes())
		case !ok:
			l.c.add(key+".type", "unknown channel type %q: known types are %s", rc.Type, knownTypes())
		}
		if !ok {
			// The adapter's keys cannot be checked without its type.
			l.c.silence(key)
			continue
		}
		settings := f.NewConfig()
		if !l.decodeAt(tables[name], key, key, settings) {
			continue
		}
		l.c.expandValue(key, reflect.ValueOf(settings))
		ch.Settings = settings
		l.channelOK[name] = true
		if v, ok := settings.(relay.ConfigValidator); ok {
			for _, err := range v.Validate() {
				l.adapterProblem(key, err)
			}
		}
	}
}

// adapterProblem records an error from an adapter's Validate, which starts
// with the key it is about ("token: required").
func (l *loader) adapterProblem(channelKey string, err error) {
	msg := err.Error()
	if k, rest, ok := strings.Cut(msg, ": "); ok && adapterKeyRE.MatchString(k) {
		l.c.add(channelKey+"."+k, "%s", rest)
		return
	}
	l.c.add(channelKey, "%s", msg)
}

func knownTypes() string {
	types := relay.Types()
	if len(types) == 0 {
		return "(none registered)"
	}
	return strings.Join(types, ", ")
}

func (l *loader) loadContacts(prim toml.Primitive) {
	cfg := l.cfg
	cfg.Contacts = map[string]*Contact{}
	l.routeGiven = map[string]bool{}
	l.brokenContact = map[string]bool{}
	var tables map[string]toml.Primitive
	if !l.decodeAt(prim, "contacts", "contacts", &tables) {
		return
	}
	for _, name := range l.order("contacts", tables) {
		key := joinKey("contacts", name)
		var keys map[string]toml.Primitive
		ct := &Contact{Name: name, Addresses: map[string]string{}}
		cfg.Contacts[name] = ct
		cfg.ContactOrder = append(cfg.ContactOrder, name)
		if !l.decodeAt(tables[name], key, key, &keys) {
			// Known by name, so that groups naming it are not reported too.
			l.brokenContact[name] = true
			continue
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Slice(names, func(i, j int) bool {
			a, b := l.c.index.line(joinKey(key, names[i])), l.c.index.line(joinKey(key, names[j]))
			if a != b {
				return a < b
			}
			return names[i] < names[j]
		})
		for _, k := range names {
			kkey := joinKey(key, k)
			if k == "route" {
				var route []string
				if l.decodeAt(keys[k], kkey, kkey, &route) {
					l.c.expandValue(kkey, reflect.ValueOf(&route))
					ct.Route = route
					l.routeGiven[name] = true
				} else {
					l.brokenContact[name] = true
				}
				continue
			}
			if _, ok := cfg.Channels[k]; !ok {
				l.c.add(kkey, "no channel named %s", k)
				l.c.silence(kkey)
				continue
			}
			var addr string
			if l.decodeAt(keys[k], kkey, kkey, &addr) {
				ct.Addresses[k] = l.c.expandString(kkey, addr)
			} else {
				l.brokenContact[name] = true
			}
		}
	}
}

// topLevel are the tables of the file.
var topLevel = map[string]bool{
	"server": true, "store": true, "delivery": true, "routing": true,
	"channels": true, "contacts": true, "groups": true, "inbound": true,
}

// unknownKeys reports every key that nothing decoded, once: at the
// outermost table that is unknown ([server.x.y] is reported as server.x).
func (l *loader) unknownKeys() {
	undecoded := l.md.Undecoded()
	isUndecoded := map[string]bool{}
	for _, k := range undecoded {
		isUndecoded[k.String()] = true
	}
	known := map[string]bool{}
	for _, k := range l.md.Keys() {
		if isUndecoded[k.String()] {
			continue
		}
		for i := 1; i <= len(k); i++ {
			known[k[:i].String()] = true
		}
	}
	seen := map[string]int{}
	reported := map[string]bool{}
	for _, k := range undecoded {
		plain := k.String()
		n := seen[plain]
		seen[plain] = n + 1
		key := l.c.index.indexed(plain, n)
		if l.c.silenced(key) {
			continue
		}
		// The outermost unknown table is the one to report.
		for i := 1; i < len(k); i++ {
			p := k[:i].String()
			if !known[p] && !(i == 1 && topLevel[p]) {
				for trimIndexes(key) != p && key != "" {
					key = parentKey(key)
				}
				k = k[:i]
				break
			}
		}
		if reported[key] {
			continue
		}
		reported[key] = true
		l.c.add(key, "unknown key %q", k[len(k)-1])
	}
}
