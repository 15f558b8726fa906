// Package httpx holds the small HTTP helpers the adapters share.
package httpx

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter reads a Retry-After header, in delay-seconds or as an HTTP
// date (RFC 9110 §10.2.3), relative to now. ok is false when the header is
// absent, unreadable, or a date that has passed.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now), true
	}
	return 0, false
}

// RetryAfterOr is RetryAfter with a default for when the header says
// nothing usable.
func RetryAfterOr(h http.Header, now time.Time, def time.Duration) time.Duration {
	if d, ok := RetryAfter(h, now); ok {
		return d
	}
	return def
}
