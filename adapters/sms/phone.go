package sms

import (
	"errors"
	"fmt"
	"strings"
)

// region is what national numbers of one country need to become E.164.
type region struct {
	cc     string // country calling code
	trunk  string // national trunk prefix dropped in E.164 ("0" in Korea)
	nsnMin int    // length of the national significant number
	nsnMax int
}

// regions are the default_region values we know. A national number
// (without +) is read as one of these; any country is reachable in +form.
var regions = map[string]region{
	"KR": {"82", "0", 8, 10}, // 02-123-4567 (8) … 010-1234-5678 (10)
	"US": {"1", "1", 10, 10},
	"CA": {"1", "1", 10, 10},
	"JP": {"81", "0", 9, 10},
	"CN": {"86", "0", 7, 11},
	"TW": {"886", "0", 8, 9},
	"HK": {"852", "", 8, 8},
	"SG": {"65", "", 8, 8},
	"GB": {"44", "0", 9, 10},
	"DE": {"49", "0", 6, 13},
	"FR": {"33", "0", 9, 9},
	"AU": {"61", "0", 9, 9},
}

// ErrBadPhone is wrapped by every NormalizePhone error.
var ErrBadPhone = errors.New("not a phone number")

// NormalizePhone returns raw in E.164 ("+821012345678"). It drops spaces,
// dashes, dots, slashes and parentheses; "+" or "00" starts an
// international number, anything else is national in defaultRegion
// ("010-1234-5678" in KR). A national trunk "0" written after the country
// code ("+82 010-…", a common slip) is dropped.
func NormalizePhone(raw, defaultRegion string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(raw) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '/' || r == '(' || r == ')' || r == '\u00a0':
		default:
			return "", fmt.Errorf("%w: %q has %q", ErrBadPhone, raw, r)
		}
	}
	s := b.String()
	var intl string
	switch {
	case strings.HasPrefix(s, "+"):
		intl = s[1:]
	case strings.HasPrefix(s, "00"):
		intl = s[2:]
	}
	if intl != "" || strings.HasPrefix(s, "+") {
		return normalizeIntl(raw, intl)
	}
	reg, ok := regions[strings.ToUpper(defaultRegion)]
	if !ok {
		return "", fmt.Errorf("%w: %q is national and region %q is unknown; write it as +<country code>…", ErrBadPhone, raw, defaultRegion)
	}
	nsn := s
	if reg.trunk != "" && strings.HasPrefix(nsn, reg.trunk) && len(nsn) > reg.nsnMax {
		nsn = nsn[len(reg.trunk):]
	} else if reg.trunk == "0" {
		nsn = strings.TrimPrefix(nsn, "0")
	}
	if len(nsn) < reg.nsnMin || len(nsn) > reg.nsnMax || strings.HasPrefix(nsn, "0") {
		return "", fmt.Errorf("%w: %q is not a %s number", ErrBadPhone, raw, strings.ToUpper(defaultRegion))
	}
	return "+" + reg.cc + nsn, nil
}

func normalizeIntl(raw, digits string) (string, error) {
	if digits == "" || digits[0] == '0' {
		return "", fmt.Errorf("%w: %q has no country code", ErrBadPhone, raw)
	}
	for _, reg := range regions {
		nsn, ok := strings.CutPrefix(digits, reg.cc)
		if !ok || reg.cc == "1" && len(digits) != 11 {
			continue
		}
		if reg.trunk == "0" && strings.HasPrefix(nsn, "0") {
			nsn = nsn[1:]
			digits = reg.cc + nsn
		}
		if len(nsn) < reg.nsnMin || len(nsn) > reg.nsnMax {
			return "", fmt.Errorf("%w: %q has a wrong length for +%s", ErrBadPhone, raw, reg.cc)
		}
		break
	}
	// E.164 allows at most 15 digits; fewer than 8 is no real subscriber.
	if len(digits) < 8 || len(digits) > 15 {
		return "", fmt.Errorf("%w: %q has %d digits", ErrBadPhone, raw, len(digits))
	}
	return "+" + digits, nil
}

// nationalKR turns +82… into the national form Solapi expects ("01012345678").
func nationalKR(e164 string) (string, bool) {
	nsn, ok := strings.CutPrefix(e164, "+82")
	if !ok {
		return "", false
	}
	return "0" + nsn, true
}
