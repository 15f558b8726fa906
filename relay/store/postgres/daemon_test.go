package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/relay-project/relay/adapters/webhook"
	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay/daemon"
	"github.com/relay-project/relay/relay/store/postgres"
)

// TestTwoDaemonsShareOneQueue runs two relay daemons on one PostgreSQL
// database (store.dsn): messages accepted by either are delivered, each
// exactly once, by whichever instance claims them.
func TestTwoDaemonsShareOneQueue(t *testing.T) {
	dsn := postgres.NewDatabase(t)
	var mu sync.Mutex
	seen := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ ID string }
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		seen[p.ID]++
		mu.Unlock()
	}))
	defer sink.Close()
	cfgText := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[store]
dsn = %q
[delivery]
retry_min = "50ms"
retry_max = "100ms"
[channels.hook]
type = "webhook"
url = %q
[contacts.owner]
route = ["hook"]
hook = "owner"
`, dsn, sink.URL)
	var bases []string
	for i := 0; i < 2; i++ {
		cfg, err := config.Parse("relay.toml", []byte(cfgText))
		if err != nil {
			t.Fatal(err)
		}
		d, err := daemon.New(cfg, daemon.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		for d.Addr() == "" {
			time.Sleep(5 * time.Millisecond)
		}
		bases = append(bases, "http://"+d.Addr())
	}
	var ids []string
	for i := 0; i < 100; i++ {
		resp, err := http.Post(bases[i%2]+"/v1/messages", "application/json", strings.NewReader(fmt.Sprintf(`{"to":"owner","text":"m%d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 202 {
			t.Fatalf("submit: %d", resp.StatusCode)
		}
		ids = append(ids, v.ID)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered", n, len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("message %s delivered %d times", id, seen[id])
		}
	}
	// Either instance reads what the other accepted.
	resp, err := http.Get(bases[1] + "/v1/messages/" + ids[0])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("read across instances: %v %v", err, resp.Status)
	}
	resp.Body.Close()
}
