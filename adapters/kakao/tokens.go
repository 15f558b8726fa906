package kakao

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/relay-project/relay/relay"
)

// StateKey is the env.State key of the token record.
const StateKey = "tokens"

const (
	// refreshAhead: an access token with less life left is refreshed
	// before use (Kakao issues them for about 6 hours).
	refreshAhead = 5 * time.Minute
	// loginRetry: after Kakao refused a refresh, it is not tried again
	// for this long (or until a login), to respect the token issuance
	// limits (20 access tokens per 10 minutes per user).
	loginRetry = 10 * time.Minute
	// transientRetry: after a refresh failed on the network or a 5xx.
	transientRetry = 30 * time.Second
	// saveTimeout bounds storing new tokens, which outlives the caller's
	// context: once Kakao rotated the refresh token, the old one is dead.
	saveTimeout = 10 * time.Second
)

// ReasonLoginExpired is the health signal's reason when the login is gone.
const ReasonLoginExpired = "Kakao login expired: run relay kakao login"

// tokenRecord is what the channel keeps in env.State under StateKey,
// written whole with one Put, so a rotated refresh token replaces the old
// one atomically.
type tokenRecord struct {
	AccessToken      string    `json:"access_token"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	Scope            string    `json:"scope,omitempty"`
	IssuedAt         time.Time `json:"issued_at"`
}

// tokenResponse is kauth's /oauth/token answer.
// https://developers.kakao.com/docs/latest/ko/kakaologin/rest-api#request-token
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	TokenType             string `json:"token_type"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	Scope                 string `json:"scope"`
}

// load reads the token record from the store once.
func (a *Adapter) load(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.loaded {
		return nil
	}
	if a.env.State != nil {
		b, ok, err := a.env.State.Get(ctx, StateKey)
		if err != nil {
			return relay.Errorf(relay.KindTemporary, "kakao: reading stored tokens: %w", err)
		}
		if ok {
			if err := json.Unmarshal(b, &a.tok); err != nil {
				// A damaged record is as good as none: the bootstrap
				// refresh token or a login replaces it.
				a.log.Error("kakao: stored tokens are unreadable; ignoring them", "error", err)
				a.tok = tokenRecord{}
			}
		}
	}
	a.loaded = true
	return nil
}

// usable returns the current access token when it has more than
// refreshAhead left and is not the one Kakao just refused.
func (a *Adapter) usable(refused string, now time.Time) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tok
	if t.AccessToken != "" && t.AccessToken != refused && now.Before(t.AccessExpiresAt.Add(-refreshAhead)) {
		return t.AccessToken, true
	}
	return "", false
}

// accessToken returns an access token to use, refreshing it when it is due
// or when refused is the current one (Kakao answered -401). At most one
// exchange is in flight; after a refused refresh none is tried for
// loginRetry, and the refusal is returned at once.
func (a *Adapter) accessToken(ctx context.Context, refused string) (string, error) {
	if err := a.load(ctx); err != nil {
		return "", err
	}
	if t, ok := a.usable(refused, a.env.Now()); ok {
		return t, nil
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return "", classifyTransport(ctx, "waiting for a token refresh", ctx.Err(), false)
	}
	defer func() { <-a.sem }()

	now := a.env.Now()
	// Someone else may have refreshed while we waited.
	if t, ok := a.usable(refused, now); ok {
		return t, nil
	}
	a.mu.Lock()
	cur := a.tok
	blocked, blockedErr := now.Before(a.blockedUntil), a.blockedErr
	a.mu.Unlock()
	// A token near its end is still good while a refresh cannot be had.
	stillValid := cur.AccessToken != "" && cur.AccessToken != refused && now.Before(cur.AccessExpiresAt)
	if blocked {
		if stillValid {
			return cur.AccessToken, nil
		}
		return "", blockedErr
	}
	refresh := cur.RefreshToken
	if refresh == "" {
		refresh = a.cfg.RefreshToken
	}
	if refresh == "" {
		if stillValid {
			return cur.AccessToken, nil
		}
		err := relay.Errorf(relay.KindAuth, "kakao: not logged in: run relay kakao login")
		a.loginLost(err)
		return "", err
	}

	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {a.cfg.RestAPIKey},
		"refresh_token": {refresh},
	}
	if a.cfg.ClientSecret != "" {
		form.Set("client_secret", a.cfg.ClientSecret)
	}
	tr, err := a.exchange(ctx, form)
	if err != nil {
		switch {
		case relay.KindOf(err) == relay.KindAuth:
			a.loginLost(err)
		case ctx.Err() == nil:
			// Kakao or the network failed, not our caller: wait a little
			// before the next try, to spare the issuance limits.
			a.mu.Lock()
			a.blockedUntil, a.blockedErr = now.Add(transientRetry), asRelayError(err)
			a.mu.Unlock()
		}
		if stillValid {
			a.log.Warn("kakao: token refresh failed; using the current token until it expires", "error", err)
			return cur.AccessToken, nil
		}
		return "", err
	}
	rec := tokenRecord{
		AccessToken:      tr.AccessToken,
		AccessExpiresAt:  expiry(now, tr.ExpiresIn),
		RefreshToken:     refresh,
		RefreshExpiresAt: cur.RefreshExpiresAt,
		Scope:            cur.Scope,
		IssuedAt:         now,
	}
	if tr.Scope != "" {
		rec.Scope = tr.Scope
	}
	// Kakao returns a new refresh token only when the old one has less
	// than a month left, and the old one dies with it.
	if tr.RefreshToken != "" {
		rec.RefreshToken = tr.RefreshToken
		rec.RefreshExpiresAt = time.Time{}
		if tr.RefreshTokenExpiresIn > 0 {
			rec.RefreshExpiresAt = now.Add(time.Duration(tr.RefreshTokenExpiresIn) * time.Second)
		}
		a.log.Info("kakao: refresh token rotated")
	}
	if err := a.save(ctx, rec); err != nil {
		// The tokens work; only a restart would lose them. Keep going.
		a.log.Error("kakao: could not store refreshed tokens", "error", err)
	}
	a.tokensRenewed()
	return rec.AccessToken, nil
}

// expiry turns expires_in into a time, assuming an hour when Kakao omits it.
func expiry(now time.Time, expiresIn int64) time.Time {
	if expiresIn <= 0 {
		return now.Add(time.Hour)
	}
	return now.Add(time.Duration(expiresIn) * time.Second)
}

// save stores rec with one Put and makes it current. It outlives the
// caller's context by up to saveTimeout.
func (a *Adapter) save(ctx context.Context, rec tokenRecord) error {
	a.mu.Lock()
	a.tok = rec
	a.loaded = true
	a.mu.Unlock()
	if a.env.State == nil {
		return errors.New("kakao: no state store: tokens are kept in memory only")
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if err := a.env.State.Put(ctx, StateKey, b); err != nil {
		return fmt.Errorf("kakao: storing tokens: %w", err)
	}
	return nil
}

// tokensRenewed clears a refusal after Kakao issued tokens.
func (a *Adapter) tokensRenewed() {
	a.sigMu.Lock()
	defer a.sigMu.Unlock()
	a.mu.Lock()
	a.blockedUntil, a.blockedErr = time.Time{}, nil
	wasDown := a.down == downLogin
	if wasDown {
		a.down = upNow
	}
	a.mu.Unlock()
	if wasDown {
		a.log.Info("kakao: login works again")
		a.env.Signal(relay.HealthSignal{Down: false})
	}
}

// loginLost records that only a new login can repair the channel: no
// refresh is tried for loginRetry, and the channel is signalled down once.
func (a *Adapter) loginLost(err error) {
	e := asRelayError(err)
	e.Kind = relay.KindAuth
	a.mu.Lock()
	a.blockedUntil, a.blockedErr = a.env.Now().Add(loginRetry), e
	a.mu.Unlock()
	a.signalDown(downLogin, relay.HealthSignal{Down: true, Reason: ReasonLoginExpired, Notify: true})
}

func asRelayError(err error) *relay.Error {
	var e *relay.Error
	if errors.As(err, &e) {
		c := *e
		return &c
	}
	return &relay.Error{Kind: relay.KindTemporary, Msg: err.Error(), Err: err}
}

// exchange posts form to kauth's token endpoint and returns the tokens.
// Its errors never contain the form (which holds the refresh token, the
// code and the client secret) nor the response body (which holds tokens).
func (a *Adapter) exchange(ctx context.Context, form url.Values) (tokenResponse, error) {
	// The exchange outlives the send that asked for it: a rotated refresh
	// token in an answer read after the send's deadline would be lost,
	// and Kakao has already retired the old one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	resp, err := a.do(ctx, http.MethodPost, a.cfg.AuthURL+pathToken, "", form)
	if err != nil {
		// A token request is not a message: a lost answer is plainly
		// temporary, never ambiguous.
		return tokenResponse{}, classifyTransport(ctx, "token request", err, false)
	}
	if resp.status/100 != 2 {
		return tokenResponse{}, classifyAuth(resp.status, resp.body).err
	}
	var tr tokenResponse
	if json.Unmarshal(resp.body, &tr) != nil || tr.AccessToken == "" {
		return tokenResponse{}, relay.Errorf(relay.KindTemporary, "kakao: token response %d without an access_token", resp.status)
	}
	return tr, nil
}

// AuthURL returns Kakao's authorization page for a login that asks for the
// talk_message consent. Sending to friends also needs the app's Kakao Talk
// Social permission, and finding friends' UUIDs the friends consent; those
// are set up in the Kakao app, not here.
func (a *Adapter) AuthURL(redirectURI, state string) string {
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {a.cfg.RestAPIKey},
		"redirect_uri":  {redirectURI},
		"scope":         {"talk_message"},
	}
	if state != "" {
		q.Set("state", state)
	}
	return a.cfg.AuthURL + pathAuthorize + "?" + q.Encode()
}

// Authorize exchanges an authorization code for tokens, stores them and
// brings a channel that lost its login back up.
func (a *Adapter) Authorize(ctx context.Context, code, redirectURI string) error {
	if code == "" {
		return relay.Errorf(relay.KindInvalid, "kakao: login: no authorization code")
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return classifyTransport(ctx, "waiting for a token refresh", ctx.Err(), false)
	}
	defer func() { <-a.sem }()
	form := url.Values{
		"grant_type":   {"authorization_code"},
		"client_id":    {a.cfg.RestAPIKey},
		"redirect_uri": {redirectURI},
		"code":         {code},
	}
	if a.cfg.ClientSecret != "" {
		form.Set("client_secret", a.cfg.ClientSecret)
	}
	tr, err := a.exchange(ctx, form)
	if err != nil {
		return err
	}
	now := a.env.Now()
	rec := tokenRecord{
		AccessToken:     tr.AccessToken,
		AccessExpiresAt: expiry(now, tr.ExpiresIn),
		RefreshToken:    tr.RefreshToken,
		Scope:           tr.Scope,
		IssuedAt:        now,
	}
	if tr.RefreshTokenExpiresIn > 0 {
		rec.RefreshExpiresAt = now.Add(time.Duration(tr.RefreshTokenExpiresIn) * time.Second)
	}
	err = a.save(ctx, rec)
	a.sigMu.Lock()
	defer a.sigMu.Unlock()
	a.mu.Lock()
	a.blockedUntil, a.blockedErr = time.Time{}, nil
	quota := a.down == downQuota && now.Before(a.quotaUntil)
	if !quota {
		a.down = upNow
	}
	a.mu.Unlock()
	if !quota {
		a.env.Signal(relay.HealthSignal{Down: false})
	}
	if err != nil {
		// The tokens work from memory now, but a restart would lose them.
		return relay.Errorf(relay.KindTemporary, "%w", err)
	}
	a.log.Info("kakao: logged in", "scope", rec.Scope)
	return nil
}
