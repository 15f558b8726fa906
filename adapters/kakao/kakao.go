// Package kakao sends Kakao Talk messages over Kakao's REST API: the
// default text template, to the logged-in user's own chat ("me") or to a
// friend by UUID. The channel logs in with OAuth (relay.Authorizer); the
// access and refresh tokens live in the channel's durable state, are
// refreshed before they expire and on a refused token, and a refused
// refresh marks the channel down until someone logs in again.
//
// Logging in: the daemon, which owns the channel's state, calls
// AuthURL(redirectURI, state), the user opens it and agrees, Kakao
// redirects the browser to redirectURI with ?code=&state=, ParseCallback
// checks the state and returns the code, and Authorize(ctx, code,
// redirectURI) stores the tokens. Kakao accepts only redirect URIs
// registered in the app exactly, port included, so `relay kakao login`
// needs a fixed loopback address (path LoginRedirectPath) and the web
// console its /ui/kakao/callback URL, both registered in the app.
//
// Scopes: the login asks for talk_message, which "me" needs. Sending to a
// friend UUID also needs the app's Kakao Talk Social permission and, to
// learn friends' UUIDs from the Friends API, the friends consent; those
// are app settings, so they are not requested here (asking for a scope
// the app has not enabled fails the whole login).
package kakao

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay"
)

// TextLimit is the text template's limit: "최대 200자".
const TextLimit = 200

const (
	pathSendToMe    = "/v2/api/talk/memo/default/send"
	pathSendFriends = "/v1/api/talk/friends/message/default/send"
	pathTokenInfo   = "/v1/user/access_token_info"
	pathToken       = "/oauth/token"
	pathAuthorize   = "/oauth/authorize"

	formContentType = "application/x-www-form-urlencoded;charset=utf-8"
	maxBody         = 1 << 20
)

func init() {
	relay.Register(relay.Factory{Type: "kakao", NewConfig: func() any { return &Config{} }, New: New})
}

var (
	_ relay.Adapter     = (*Adapter)(nil)
	_ relay.Starter     = (*Adapter)(nil)
	_ relay.TextLimiter = (*Adapter)(nil)
	_ relay.Authorizer  = (*Adapter)(nil)
)

// Adapter is one kakao channel.
type Adapter struct {
	cfg    Config
	env    relay.Env
	log    *slog.Logger
	client *http.Client

	// sem admits one token exchange (refresh or login) at a time, so that
	// concurrent sends do not each spend a token issuance.
	sem chan struct{}

	mu           sync.Mutex
	loaded       bool
	tok          tokenRecord
	blockedUntil time.Time    // no refresh attempt before this
	blockedErr   *relay.Error // what callers get meanwhile
	down         downCause    // what we signalled the channel down for
	quotaUntil   time.Time    // the channel's daily quota is spent until
	quotaErr     *relay.Error
	rcptUntil    map[string]time.Time // a recipient's quota is spent until

	// sigMu orders health signals: a state change and its Signal happen
	// together, so an "up" can never overtake the "down" it answers.
	sigMu sync.Mutex

	startOnce sync.Once
	closeOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
}

// downCause says why the adapter signalled its channel down, so that only
// the matching recovery clears it and each cause is signalled once.
type downCause int

const (
	upNow       downCause = iota
	downLogin             // refresh refused or no login: cleared by new tokens
	downConsent           // consent or app settings: cleared by a login or a send that works
	downQuota             // daily quota: cleared by a call that works after the reset
)

// New builds a kakao adapter from *Config. It does not touch the network.
func New(cfg any, env relay.Env) (relay.Adapter, error) {
	c, ok := cfg.(*Config)
	if !ok || c == nil {
		return nil, fmt.Errorf("kakao: config is %T, want *kakao.Config", cfg)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("kakao: %w", errors.Join(errs...))
	}
	if strings.TrimSpace(c.RestAPIKey) == "" {
		return nil, errors.New("kakao: rest_api_key: empty")
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Signal == nil {
		env.Signal = func(relay.HealthSignal) {}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &Adapter{
		cfg: c.withDefaults(),
		env: env,
		log: env.Logger.With("channel", env.Name, "type", "kakao"),
		client: &http.Client{
			Transport: transport,
			// Kakao's APIs do not redirect; following one could carry the
			// bearer token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		sem:       make(chan struct{}, 1),
		rcptUntil: map[string]time.Time{},
	}, nil
}

// TextLimit returns the text template's 200-character limit.
func (a *Adapter) TextLimit() int { return TextLimit }

// Start obtains an access token in the background when the store has none
// and a refresh_token is configured, so the first send does not wait for
// it. It does not block.
func (a *Adapter) Start(ctx context.Context) error {
	a.startOnce.Do(func() {
		if a.closed.Load() {
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		a.mu.Lock()
		a.stop = cancel
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, err := a.accessToken(ctx, ""); err != nil && ctx.Err() == nil {
				a.log.Warn("kakao: no usable access token at start", "error", err)
			}
		}()
	})
	return nil
}

// Close stops the start-up work and waits for it. It may be called twice.
func (a *Adapter) Close() error {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		a.mu.Lock()
		stop := a.stop
		a.mu.Unlock()
		if stop != nil {
			stop()
		}
		a.wg.Wait()
		a.client.CloseIdleConnections()
	})
	return nil
}

// textTemplate is the default text template.
// https://developers.kakao.com/docs/latest/ko/message/message-template
type textTemplate struct {
	ObjectType string       `json:"object_type"`
	Text       string       `json:"text"`
	Link       templateLink `json:"link"`
}

type templateLink struct {
	WebURL       string `json:"web_url"`
	MobileWebURL string `json:"mobile_web_url"`
}

// Send delivers one text to "me" or to a friend UUID. A refused access
// token is refreshed and the send retried once. Kakao returns no message
// id, so Sent is empty.
func (a *Adapter) Send(ctx context.Context, out *relay.Outgoing) (relay.Sent, error) {
	if a.closed.Load() {
		return relay.Sent{}, relay.Errorf(relay.KindTemporary, "kakao: %w", relay.ErrClosed)
	}
	if strings.TrimSpace(out.Text) == "" {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "kakao: empty text")
	}
	if !utf8.ValidString(out.Text) {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "kakao: text is not valid UTF-8")
	}
	if err := a.cfg.ValidateAddress(out.Address); err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindPermanent, "%v", err)
	}
	if err := a.quotaBlock(out.Address); err != nil {
		return relay.Sent{}, err
	}
	tmpl, err := json.Marshal(textTemplate{
		ObjectType: "text",
		Text:       out.Text,
		Link:       templateLink{WebURL: a.cfg.LinkURL, MobileWebURL: a.cfg.LinkURL},
	})
	if err != nil {
		return relay.Sent{}, relay.Errorf(relay.KindInvalid, "kakao: template: %w", err)
	}
	form := url.Values{"template_object": {string(tmpl)}}
	path := pathSendToMe
	if out.Address != AddressMe {
		path = pathSendFriends
		uuids, _ := json.Marshal([]string{out.Address})
		form.Set("receiver_uuids", string(uuids))
	}
	err = a.withToken(ctx, "send", func(token string) (verdict, error) {
		return a.sendOnce(ctx, token, path, form, out.Address)
	}, out.Address)
	if err != nil {
		return relay.Sent{}, err
	}
	return relay.Sent{}, nil
}

// sendOnce makes one send call. A nil verdict error with a nil error means
// Kakao took the message.
func (a *Adapter) sendOnce(ctx context.Context, token, path string, form url.Values, addr string) (verdict, error) {
	resp, err := a.do(ctx, http.MethodPost, a.cfg.APIURL+path, token, form)
	if err != nil {
		return verdict{}, err
	}
	if resp.status/100 != 2 {
		return classifyAPI(resp.status, resp.header, resp.body, a.env.Now()), nil
	}
	if path == pathSendFriends {
		return friendsVerdict(resp.body, addr, a.env.Now()), nil
	}
	// HTTP 200 is success whatever the body ({"result_code":0}).
	return verdict{}, nil
}

// friendsResult is the friends send's answer. With several receivers a
// partial failure comes as HTTP 200 with failure_info (failure_infos in
// newer SDK docs); we send to one receiver, where Kakao usually answers
// with a plain error instead, but both shapes are handled.
type friendsResult struct {
	Successful   []string      `json:"successful_receiver_uuids"`
	FailureInfo  []failureInfo `json:"failure_info"`
	FailureInfos []failureInfo `json:"failure_infos"`
}

type failureInfo struct {
	Code          int      `json:"code"`
	Msg           string   `json:"msg"`
	ReceiverUUIDs []string `json:"receiver_uuids"`
}

func friendsVerdict(body []byte, addr string, now time.Time) verdict {
	var r friendsResult
	if json.Unmarshal(body, &r) != nil {
		return verdict{}
	}
	for _, f := range append(r.FailureInfo, r.FailureInfos...) {
		mine := len(f.ReceiverUUIDs) == 0
		for _, u := range f.ReceiverUUIDs {
			mine = mine || u == addr
		}
		if !mine {
			continue
		}
		v := classifyCode(http.StatusOK, apiError{Code: f.Code, Msg: f.Msg}, now)
		if v.effect == effectTokenRefused {
			// Not a token problem when the request itself was accepted.
			v.effect = effectNone
			v.err.Kind = relay.KindPermanent
		}
		return v
	}
	return verdict{}
}

// Probe checks the access token with access_token_info, Kakao's cheapest
// authenticated call, refreshing the token first when it is due.
func (a *Adapter) Probe(ctx context.Context) error {
	if err := a.quotaBlock(""); err != nil {
		return err
	}
	// After a refused refresh the last access token may live a few more
	// minutes, but the channel was signalled down: agree with the signal
	// instead of letting probes bring it back up meanwhile.
	a.mu.Lock()
	lost := a.down == downLogin && a.env.Now().Before(a.blockedUntil) && a.blockedErr != nil
	var lostErr error
	if lost {
		lostErr = asRelayError(a.blockedErr)
	}
	a.mu.Unlock()
	if lost {
		return lostErr
	}
	return a.withToken(ctx, "probe", func(token string) (verdict, error) {
		resp, err := a.do(ctx, http.MethodGet, a.cfg.APIURL+pathTokenInfo, token, nil)
		if err != nil {
			return verdict{}, err
		}
		if resp.status/100 != 2 {
			return classifyAPI(resp.status, resp.header, resp.body, a.env.Now()), nil
		}
		return verdict{}, nil
	}, "")
}

// withToken runs call with a usable access token. When Kakao refuses the
// token (-401) it refreshes and runs call once more; a fresh token that is
// refused too means the login itself is gone. The verdict's effect is then
// applied (quota, consent, login).
func (a *Adapter) withToken(ctx context.Context, what string, call func(token string) (verdict, error), addr string) error {
	token, err := a.accessToken(ctx, "")
	if err != nil {
		return err
	}
	v, err := call(token)
	if err != nil {
		return classifyTransport(ctx, what, err, errors.Is(err, errWritten))
	}
	if v.effect == effectTokenRefused {
		a.log.Info("kakao: access token refused; refreshing", "code", v.code)
		token, err = a.accessToken(ctx, token)
		if err != nil {
			return err
		}
		v, err = call(token)
		if err != nil {
			return classifyTransport(ctx, what, err, errors.Is(err, errWritten))
		}
		if v.effect == effectTokenRefused {
			v.effect = effectLoginNeeded
		}
	}
	return a.apply(v, addr)
}

// errWritten marks a transport error that happened after the whole request
// was written: Kakao may have acted on it.
var errWritten = errors.New("request was written")

type response struct {
	status int
	header http.Header
	body   []byte
}

// do makes one request. token, when set, goes in the Authorization header;
// form, when set, is the form-encoded body. The error of a failed round
// trip wraps errWritten when the request had been written.
func (a *Adapter) do(ctx context.Context, method, u, token string, form url.Values) (*response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { wrote.Store(i.Err == nil) },
	})
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", formContentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.client.Do(req)
	if err != nil {
		if wrote.Load() {
			return nil, fmt.Errorf("%w (%w)", err, errWritten)
		}
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil && res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("reading the %d response: %w (%w)", res.StatusCode, err, errWritten)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}, nil
}
