package sms

import "unicode/utf16"

// gsmBasic and gsmExtended are the GSM 03.38 default alphabet and its
// extension table (extension characters take two septets).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "^{}\\[~]|€\f"
)

var gsmSeptets = func() map[rune]int {
	m := map[rune]int{}
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExtended {
		m[r] = 2
	}
	return m
}()

// Segments returns how many SMS segments text costs: GSM-7 texts take 160
// septets in one segment, 153 in each of a concatenated message; any other
// character (Hangul, emoji) makes the whole text UCS-2: 70 UTF-16 units in
// one segment, 67 in each of a concatenated one.
func Segments(text string) (segments int, ucs2 bool) {
	septets := 0
	for _, r := range text {
		n, ok := gsmSeptets[r]
		if !ok {
			ucs2 = true
			break
		}
		septets += n
	}
	if ucs2 {
		units := len(utf16.Encode([]rune(text)))
		return split(units, 70, 67), true
	}
	return split(septets, 160, 153), false
}

func split(n, single, multi int) int {
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}

// euckrBytes is the length Solapi charges text at: EUC-KR, one byte for
// ASCII and two for Hangul and other characters.
func euckrBytes(text string) int {
	n := 0
	for _, r := range text {
		if r < 0x80 {
			n++
		} else {
			n += 2
		}
	}
	return n
}
