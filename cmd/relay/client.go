package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay/api"
)

// client talks to the running daemon's API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// apiError is the API's error envelope.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code) }

// newClient finds the daemon from the configuration: its listen address
// (or $RELAY_ADDR) and a token ($RELAY_TOKEN, else the first token in the
// file holding scope).
func newClient(cfgPath, scope string) (*client, error) {
	path := config.Find(cfgPath)
	cfg, cfgErr := config.Load(path)
	addr := os.Getenv("RELAY_ADDR")
	if addr == "" {
		if cfg == nil {
			return nil, fmt.Errorf("cannot find the daemon: %v (set RELAY_ADDR or fix the configuration)", cfgErr)
		}
		addr = cfg.Server.Listen
	}
	c := &client{token: os.Getenv("RELAY_TOKEN")}
	if c.token == "" && cfg != nil {
		for _, t := range cfg.Server.Tokens {
			if t.HasScope(scope) || t.HasScope(config.ScopeAdmin) {
				c.token = t.Secret
				break
			}
		}
	}
	tr := &http.Transport{}
	if sock, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}
		c.base = "http://relay"
	} else if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		c.base = strings.TrimRight(addr, "/")
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("daemon address %q: %v", addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		c.base = "http://" + net.JoinHostPort(host, port)
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// request sends a request and returns the response when it is 2xx.
func (c *client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return nil, fmt.Errorf("relay is not running at %s (start it with `relay serve`): %w", c.base, err)
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&env)
		return nil, &apiError{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message}
	}
	return resp, nil
}

func timeoutCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// textArg is a command's TEXT argument: the text itself, or "-" for
// standard input (up to the API's body limit, without the final newline).
func textArg(arg string, stdin io.Reader) (string, error) {
	if arg != "-" {
		return arg, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, api.MaxBody))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}
