package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitText(t *testing.T) {
	cases := []struct {
		text  string
		limit int
		want  []string
	}{
		{"short", 10, []string{"short"}},
		{"no limit at all", 0, []string{"no limit at all"}},
		{"aaa bbb ccc ddd", 13, []string{"aaa bbb (1/2)", "ccc ddd (2/2)"}},
		{"aaa bbb ccc ddd", 11, []string{"aaa (1/4)", "bbb (2/4)", "ccc (3/4)", "ddd (4/4)"}},
		// One word longer than a part is cut inside the word.
		{"abcdefghijkl", 10, []string{"abcd (1/3)", "efgh (2/3)", "ijkl (3/3)"}},
	}
	for _, c := range cases {
		got := SplitText(c.text, c.limit)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("SplitText(%q, %d) = %q, want %q", c.text, c.limit, got, c.want)
		}
	}
}

// TestSplitTextFitsLimit: every part, marker included, fits the limit, no
// text is lost, and Korean text is cut on rune boundaries (Kakao's 200).
func TestSplitTextFitsLimit(t *testing.T) {
	words := strings.Fields(strings.Repeat("안녕하세요 오늘 주문하신 상품이 발송되었습니다 감사합니다 ", 60))
	text := strings.Join(words, " ")
	for _, limit := range []int{20, 200, 4096} {
		parts := SplitText(text, limit)
		var rebuilt []string
		for i, p := range parts {
			if n := utf8.RuneCountInString(p); n > limit {
				t.Fatalf("limit %d: part %d has %d runes", limit, i+1, n)
			}
			if !utf8.ValidString(p) {
				t.Fatalf("limit %d: part %d is not valid UTF-8", limit, i+1)
			}
			marker := fmt.Sprintf(" (%d/%d)", i+1, len(parts))
			if len(parts) > 1 && !strings.HasSuffix(p, marker) {
				t.Fatalf("limit %d: part %q lacks %q", limit, p, marker)
			}
			rebuilt = append(rebuilt, strings.TrimSuffix(p, marker))
		}
		if len(parts) > 1 && strings.Join(strings.Fields(strings.Join(rebuilt, " ")), " ") != text {
			t.Fatalf("limit %d: text lost in splitting", limit)
		}
	}
	if n := len(SplitText(text, 200)); n < 2 {
		t.Fatalf("a long text was not split: %d part", n)
	}
}

func TestDeriveStatus(t *testing.T) {
	S := func(s ...DeliveryState) []DeliveryState { return s }
	cases := []struct {
		in   []DeliveryState
		want MessageStatus
	}{
		{S(StateDelivered, StateDelivered), "delivered"},
		{S(StateDelivered, StateFailed), StatusPartial},
		{S(StateDelivered, StateQueued), "queued"},
		{S(StateSending, StateQueued), "sending"},
		{S(StateExpired, StateExpired), "expired"},
		{S(StateFailed), "failed"},
		{S(StateCancelled, StateFailed, StateCancelled), "cancelled"},
	}
	for _, c := range cases {
		if got := DeriveStatus(c.in); got != c.want {
			t.Errorf("DeriveStatus(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	d := &Directory{
		Contacts: map[string]*Contact{
			"mom":   {Name: "mom", Route: []string{"wa", "tg"}, Addresses: map[string]string{"wa": "+82", "tg": "1"}},
			"owner": {Name: "owner", Route: []string{"tg"}, Addresses: map[string]string{"tg": "2"}},
		},
		Groups: map[string][]string{"family": {"mom", "owner"}},
	}
	got, err := d.Resolve([]string{"owner", "group:family", "mom"})
	if err != nil || fmt.Sprint(got) != "[owner mom]" {
		t.Fatalf("Resolve = %v, %v; want [owner mom] once each", got, err)
	}
	_, err = d.Resolve([]string{"owner", "dad", "group:friends"})
	if !errors.Is(err, ErrUnknownContact) || !strings.Contains(err.Error(), "dad, group:friends") {
		t.Fatalf("unknown names: %v", err)
	}
	hops, err := d.Route("mom", []string{"tg", "email"})
	if err != nil || len(hops) != 1 || hops[0] != (Hop{"tg", "1"}) {
		t.Fatalf("override route: %v %v", hops, err)
	}
	if _, err := d.Route("owner", []string{"wa"}); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("override without an address: %v", err)
	}
}

func TestKindOf(t *testing.T) {
	if k := KindOf(fmt.Errorf("wrapped: %w", RateLimited(5, "429"))); k != KindRateLimited {
		t.Fatalf("wrapped kind %v", k)
	}
	if k := KindOf(context.DeadlineExceeded); k != KindAmbiguous {
		t.Fatalf("deadline: %v", k)
	}
	if k := KindOf(errors.New("anything")); k != KindTemporary {
		t.Fatalf("unclassified: %v", k)
	}
	if KindOf(nil) != 0 || OutcomeOf(KindInvalid) != OutcomePermanent {
		t.Fatal("nil / invalid mapping")
	}
}

// TestKindOfTypedNil: an adapter bug that returns a nil *Error as a
// non-nil error must not crash the dispatcher.
func TestKindOfTypedNil(t *testing.T) {
	var e *Error
	var err error = e
	if KindOf(err) != 0 || RetryAfterOf(err) != 0 {
		t.Fatal("typed nil *Error")
	}
}
