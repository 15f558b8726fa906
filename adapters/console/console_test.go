package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/adapters/adaptertest"
	"github.com/relay-project/relay/relay"
)

func TestConformance(t *testing.T) {
	var lastFile string
	adaptertest.Run(t, adaptertest.Harness{
		Address: "owner",
		Delivered: func() int {
			b, _ := os.ReadFile(lastFile)
			return strings.Count(string(b), "id=")
		},
		New: func(t *testing.T, mode adaptertest.Mode) relay.Adapter {
			lastFile = filepath.Join(t.TempDir(), "out.log")
			a, err := New(&Config{File: lastFile, Fail: mode != adaptertest.Up}, relay.Env{Name: "console"})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
	})
}

func TestAppendsToFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out.log")
	now := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	a, _ := New(&Config{File: file}, relay.Env{Name: "console", Now: func() time.Time { return now }})
	for _, text := range []string{"first", "둘째"} {
		if _, err := a.Send(context.Background(), &relay.Outgoing{MessageID: "01M", Contact: "mom", Address: "mom@home", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	b, _ := os.ReadFile(file)
	want := "2026-11-25T01:02:03Z [console] to mom (mom@home) id=01M\nfirst\n2026-11-25T01:02:03Z [console] to mom (mom@home) id=01M\n둘째\n"
	if string(b) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", b, want)
	}
	if _, err := a.Send(context.Background(), &relay.Outgoing{Text: "late"}); relay.KindOf(err) != relay.KindTemporary {
		t.Fatalf("send after close: %v", err)
	}
}
