package main

import (
	"strings"
	"testing"
)

// TestTextArg: "-" reads the text from standard input without its final
// newline; anything else is the text.
func TestTextArg(t *testing.T) {
	if got, _ := textArg("hello", strings.NewReader("ignored")); got != "hello" {
		t.Fatalf("literal: %q", got)
	}
	if got, _ := textArg("-", strings.NewReader("엄마, 도착했어요\n")); got != "엄마, 도착했어요" {
		t.Fatalf("stdin: %q", got)
	}
}
