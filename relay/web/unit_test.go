package web

import (
	"io/fs"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/health"
)

func TestCataloguesHaveTheSameKeys(t *testing.T) {
	en, ko := catalogueKeys("en"), catalogueKeys("ko")
	for _, k := range en {
		if !slices.Contains(ko, k) {
			t.Errorf("ko.json lacks %q", k)
		}
	}
	for _, k := range ko {
		if !slices.Contains(en, k) {
			t.Errorf("en.json lacks %q", k)
		}
	}
	for _, l := range languages {
		for k, v := range catalogues[l] {
			if v == "" {
				t.Errorf("%s.json: %q is empty", l, k)
			}
		}
	}
}

// Every key a template names, literally or built from a state, is in the
// catalogue, so no page shows a raw key.
func TestTemplatesUseOnlyCatalogueKeys(t *testing.T) {
	lit := regexp.MustCompile(`\{\{-?\s*t\s+"([^"]+)"`)
	keys := map[string]bool{}
	paths, _ := fs.Glob(files, "templates/*.html")
	for _, p := range paths {
		b, _ := fs.ReadFile(files, p)
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = true
		}
	}
	for _, s := range []string{"up", "down", "unknown", "none"} {
		keys["state."+s] = true
	}
	for _, s := range []string{"queued", "sending", "delivered", "expired", "failed", "cancelled", "partial"} {
		keys["dstate."+s] = true
		keys["conv.status."+s] = true
	}
	for _, s := range []string{"delivered", "temporary", "permanent", "rate_limited", "auth", "ambiguous", "sending"} {
		keys["outcome."+s] = true
	}
	for _, s := range []string{"open", "answered", "closed"} {
		keys["conv.state."+s] = true
	}
	keys["conv.status.received"] = true
	if len(keys) < 50 {
		t.Fatalf("found only %d keys: the pattern is broken", len(keys))
	}
	for k := range keys {
		if _, ok := catalogues["en"][k]; !ok {
			t.Errorf("templates use %q, which en.json lacks", k)
		}
	}
}

func TestHistoryStripShowsTheWorstStateOfEachCell(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	hist := []health.Transition{
		{At: now.Add(-3 * time.Hour), State: health.Unknown},
		{At: now.Add(-3*time.Hour + time.Second), State: health.Up},
		{At: now.Add(-61 * time.Minute), State: health.Down}, // a 2-minute outage
		{At: now.Add(-59 * time.Minute), State: health.Up},
		{At: now.Add(-10 * time.Minute), State: health.Down},
	}
	cells := historyStrip(hist, now, 48, 30*time.Minute)
	if len(cells) != 48 {
		t.Fatalf("%d cells", len(cells))
	}
	want := map[int]string{
		0:  "none",    // 24h ago: not monitored yet
		41: "none",    // 3h30 → 3h ago
		42: "unknown", // 3h → 2h30: unknown for a second, then up
		43: "up",
		45: "down", // 1h30 → 1h: the outage began at 61 min
		46: "down", // 1h → 30 min: it ended at 59 min
		47: "down", // now: down since 10 min
	}
	for i, w := range want {
		if cells[i].State != w {
			t.Errorf("cell %d (%s–%s) = %s, want %s", i, cells[i].From.Format("15:04"), cells[i].To.Format("15:04"), cells[i].State, w)
		}
	}
	if !cells[47].To.Equal(now) {
		t.Errorf("the last cell ends at %s, want now", cells[47].To)
	}
}

func TestPlainErrorWords(t *testing.T) {
	tr := translator("en")
	for msg, key := range map[string]string{
		"webhook: 503 service unavailable":                     "plain.server",
		`Get "http://x/healthz": dial tcp: connection refused`: "plain.unreachable",
		"context deadline exceeded":                            "plain.timeout",
		"whatsapp was logged out: link again":                  "plain.auth",
		"kakao: 429 quota exceeded":                            "plain.rate",
		"something odd":                                        "plain.other",
	} {
		if got := plainError(tr, msg); got != tr(key) {
			t.Errorf("plainError(%q) = %q, want %q", msg, got, tr(key))
		}
	}
}
