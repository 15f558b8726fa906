package ntfy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/relay-project/relay/adapters/adaptertest"
)

// fakeNtfy follows ntfy's documented HTTP API:
//   - POST / with a JSON message (https://docs.ntfy.sh/publish/#publish-as-json)
//     answers the message JSON with its "id";
//   - GET /v1/health answers {"healthy":true};
//   - GET /v1/account answers the account, "*" for anonymous;
//   - errors are {"code","http","error"} (server/errors.go).
type fakeNtfy struct {
	mode    adaptertest.Mode
	token   string        // accepted Bearer token; "" = no auth required
	release chan struct{} // closed at cleanup: frees hanging handlers

	mu        sync.Mutex
	published []publishRequest
	auths     []string
	nextCode  int // if set, the next publish answers this status
	nextBody  string
}

func (f *fakeNtfy) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.published)
}

func writeErr(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"http":%d,"error":%q}`+"\n", code, status, msg)
}

func (f *fakeNtfy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch f.mode {
	case adaptertest.Hanging:
		// Read the body so the server notices the client hanging up, and
		// hold the request until then or until cleanup.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case adaptertest.Failing:
		writeErr(w, http.StatusInternalServerError, 50001, "internal server error")
		return
	}
	authOK := f.token == "" || r.Header.Get("Authorization") == "Bearer "+f.token
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/health":
		fmt.Fprintln(w, `{"healthy":true}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/account":
		if r.Header.Get("Authorization") == "" {
			fmt.Fprintln(w, `{"username":"*","role":"anonymous"}`)
			return
		}
		if !authOK {
			writeErr(w, http.StatusUnauthorized, 40101, "unauthorized")
			return
		}
		fmt.Fprintln(w, `{"username":"phil","role":"user"}`)
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && r.URL.Path == "/":
		f.mu.Lock()
		code, body := f.nextCode, f.nextBody
		f.nextCode, f.nextBody = 0, ""
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if code != 0 {
			w.WriteHeader(code)
			fmt.Fprint(w, body)
			return
		}
		if r.Header.Get("Authorization") != "" && !authOK {
			writeErr(w, http.StatusUnauthorized, 40101, "unauthorized")
			return
		}
		if f.token != "" && !authOK {
			writeErr(w, http.StatusForbidden, 40301, "forbidden")
			return
		}
		var p publishRequest
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			writeErr(w, http.StatusBadRequest, 40017, "invalid request: request body must be message JSON")
			return
		}
		if !topicPattern.MatchString(p.Topic) {
			writeErr(w, http.StatusBadRequest, 40009, "invalid request: topic invalid")
			return
		}
		if p.Priority < 0 || p.Priority > 5 {
			writeErr(w, http.StatusBadRequest, 40007, "invalid priority parameter")
			return
		}
		if len(p.Message) > 4096 {
			writeErr(w, http.StatusRequestEntityTooLarge, 41301, "attachment too large, or bandwidth limit reached")
			return
		}
		f.mu.Lock()
		f.published = append(f.published, p)
		id := fmt.Sprintf("msg%04d", len(f.published))
		f.mu.Unlock()
		out, _ := json.Marshal(map[string]any{
			"id": id, "time": 1700000000, "expires": 1700043200, "event": "message",
			"topic": p.Topic, "message": p.Message, "title": p.Title, "priority": p.Priority, "tags": p.Tags,
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(out, '\n'))
	default:
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			writeErr(w, http.StatusNotFound, 40401, "page not found")
			return
		}
		writeErr(w, http.StatusNotFound, 40401, "page not found")
	}
}

// startFake starts a fake ntfy server on loopback in the given mode.
func startFake(t *testing.T, mode adaptertest.Mode, token string) (*fakeNtfy, *httptest.Server) {
	t.Helper()
	f := &fakeNtfy{mode: mode, token: token, release: make(chan struct{})}
	srv := httptest.NewServer(f)
	if mode == adaptertest.Refusing {
		srv.Close()
	} else {
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(f.release) }) // runs before srv.Close
	}
	return f, srv
}

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
