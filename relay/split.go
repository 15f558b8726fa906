package relay

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SplitText splits text into parts of at most limit runes each, marker
// included: every part of a split text ends with " (i/n)". It breaks at the
// last whitespace that fits and cuts inside a word only when a single word
// is longer than a part. A text within the limit, or a limit <= 0, gives
// one part without a marker.
func SplitText(text string, limit int) []string {
	if limit <= 0 || utf8.RuneCountInString(text) <= limit {
		return []string{text}
	}
	// The marker's width depends on n, which depends on the split: grow
	// the assumed digit count until the split fits it.
	for digits := 1; digits < 10; digits++ {
		markerLen := len(" (/)") + 2*digits
		room := limit - markerLen
		if room < 1 {
			break
		}
		parts := splitRunes(text, room)
		if len(fmt.Sprint(len(parts))) <= digits {
			for i := range parts {
				parts[i] = fmt.Sprintf("%s (%d/%d)", parts[i], i+1, len(parts))
			}
			return parts
		}
	}
	// The limit is too small for any marker: hard cut without markers.
	return splitRunes(text, limit)
}

// splitRunes cuts text into chunks of at most room runes, preferring
// whitespace boundaries; whitespace at the cut is dropped.
func splitRunes(text string, room int) []string {
	var parts []string
	rest := []rune(strings.TrimSpace(text))
	for len(rest) > 0 {
		if len(rest) <= room {
			parts = append(parts, string(rest))
			break
		}
		cut := -1
		for i := room; i > 0; i-- {
			if unicode.IsSpace(rest[i]) {
				cut = i
				break
			}
		}
		if cut <= 0 {
			parts = append(parts, string(rest[:room]))
			rest = rest[room:]
			continue
		}
		parts = append(parts, strings.TrimRightFunc(string(rest[:cut]), unicode.IsSpace))
		rest = []rune(strings.TrimLeftFunc(string(rest[cut:]), unicode.IsSpace))
	}
	return parts
}
