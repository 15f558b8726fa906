package sms

import (
	"strings"
	"testing"
)

func TestSegments(t *testing.T) {
	cases := []struct {
		name string
		text string
		segs int
		ucs2 bool
	}{
		{"empty", "", 1, false},
		{"gsm 160", strings.Repeat("a", 160), 1, false},
		{"gsm 161", strings.Repeat("a", 161), 2, false},
		{"gsm 306", strings.Repeat("a", 306), 2, false},
		{"gsm 307", strings.Repeat("a", 307), 3, false},
		{"extension chars count twice", strings.Repeat("€", 80), 1, false},
		{"extension chars overflow", strings.Repeat("€", 81), 2, false},
		{"korean 70", strings.Repeat("가", 70), 1, true},
		{"korean 71", strings.Repeat("가", 71), 2, true},
		{"korean 134", strings.Repeat("가", 134), 2, true},
		{"korean 135", strings.Repeat("가", 135), 3, true},
		{"one hangul makes it ucs2", strings.Repeat("a", 100) + "가", 2, true},
		{"emoji is two units", strings.Repeat("🙂", 35), 1, true},
		{"emoji overflow", strings.Repeat("🙂", 36), 2, true},
	}
	for _, c := range cases {
		segs, ucs2 := Segments(c.text)
		if segs != c.segs || ucs2 != c.ucs2 {
			t.Errorf("%s: Segments = %d, %v; want %d, %v", c.name, segs, ucs2, c.segs, c.ucs2)
		}
	}
}

func TestEUCKRBytes(t *testing.T) {
	if n := euckrBytes("안녕 hi"); n != 7 {
		t.Errorf("euckrBytes = %d, want 7", n)
	}
}
