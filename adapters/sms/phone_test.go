package sms

import (
	"errors"
	"testing"
)

func TestNormalizePhone(t *testing.T) {
	ok := []struct{ in, region, want string }{
		{"+82 10-1234-5678", "KR", "+821012345678"},
		{"010-1234-5678", "KR", "+821012345678"},
		{"010 1234 5678", "kr", "+821012345678"},
		{"(02) 123-4567", "KR", "+8221234567"},
		{"+82 010-1234-5678", "KR", "+821012345678"},
		{"0082-10-1234-5678", "US", "+821012345678"},
		{"+1 (415) 555-2671", "KR", "+14155552671"},
		{"(415) 555-2671", "US", "+14155552671"},
		{"1-415-555-2671", "US", "+14155552671"},
		{"090-1234-5678", "JP", "+819012345678"},
		{"+44 7911 123456", "KR", "+447911123456"},
		{"+49 30 123456", "KR", "+4930123456"},
	}
	for _, c := range ok {
		got, err := NormalizePhone(c.in, c.region)
		if err != nil || got != c.want {
			t.Errorf("NormalizePhone(%q, %s) = %q, %v; want %q", c.in, c.region, got, err, c.want)
		}
	}
	bad := []struct{ in, region string }{
		{"", "KR"},
		{"+", "KR"},
		{"abc", "KR"},
		{"010-1234-567x", "KR"},
		{"010-1234", "KR"},
		{"010-1234-5678-9999", "KR"},
		{"+82 10-12", "KR"},
		{"+0 123 4567 890", "KR"},
		{"+1234567890123456", "KR"},
		{"010-1234-5678", "ZZ"},
		{"12+34567890", "KR"},
		{"555-2671", "US"},
	}
	for _, c := range bad {
		got, err := NormalizePhone(c.in, c.region)
		if err == nil {
			t.Errorf("NormalizePhone(%q, %s) = %q, want an error", c.in, c.region, got)
		} else if !errors.Is(err, ErrBadPhone) {
			t.Errorf("NormalizePhone(%q) error %v does not wrap ErrBadPhone", c.in, err)
		}
	}
}

func TestNationalKR(t *testing.T) {
	if n, ok := nationalKR("+821012345678"); !ok || n != "01012345678" {
		t.Errorf("nationalKR = %q, %v", n, ok)
	}
	if _, ok := nationalKR("+14155552671"); ok {
		t.Error("nationalKR accepted a US number")
	}
}
