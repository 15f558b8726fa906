package httpx

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, false},
		{"soon", 0, false},
		{"-3", 0, false},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.value != "" {
			h.Set("Retry-After", c.value)
		}
		d, ok := RetryAfter(h, now)
		if d != c.want || ok != c.ok {
			t.Errorf("Retry-After %q: %v %v, want %v %v", c.value, d, ok, c.want, c.ok)
		}
		if got := RetryAfterOr(h, now, time.Hour); (c.ok && got != c.want) || (!c.ok && got != time.Hour) {
			t.Errorf("Retry-After %q with default: %v", c.value, got)
		}
	}
}
