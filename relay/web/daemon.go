package web

import (
	"log/slog"
	"net/http"

	"github.com/relay-project/relay/relay/api"
	"github.com/relay-project/relay/relay/daemon"
)

// DaemonOptions returns the console's options for a daemon: its
// dispatcher, store and health monitor, its tokens (read on every request,
// so a reload applies), and the API's own token check.
func DaemonOptions(d *daemon.Daemon, log *slog.Logger) Options {
	return Options{
		Dispatcher:       d.Dispatcher(),
		Store:            d.Store(),
		Health:           d.Health(),
		TokensConfigured: func() bool { return len(d.Config().Server.Tokens) > 0 },
		CheckToken:       func(secret string) (string, error) { return CheckAdminToken(d.API(), secret) },
		Logger:           log,
	}
}

// CheckAdminToken asks the API's own authentication whether secret is a
// configured token with the admin scope, so that the console and the API
// never disagree on who is who. It returns the token's name.
func CheckAdminToken(s *api.Server, secret string) (string, error) {
	if secret == "" {
		return "", ErrInvalidToken
	}
	r, err := http.NewRequest(http.MethodGet, "/ui/login", nil)
	if err != nil {
		return "", err
	}
	// Not a loopback address: with no tokens configured, Authenticate
	// must not admit this synthetic request as a local client.
	r.RemoteAddr = "192.0.2.1:9"
	r.Header.Set("Authorization", "Bearer "+secret)
	p, ok := s.Authenticate(discard{}, r)
	if !ok {
		return "", ErrInvalidToken
	}
	if !p.Has(api.ScopeAdmin) {
		return "", ErrNotAdmin
	}
	return p.Name, nil
}

// discard takes Authenticate's error answer, which the console does not use.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
