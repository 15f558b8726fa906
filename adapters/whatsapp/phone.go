package whatsapp

import (
	"errors"
	"fmt"
	"strings"

	"go.mau.fi/whatsmeow/types"
)

// normalisePhone turns a phone number as people write it ("+82 10-1234-5678",
// "0082 10 1234 5678", "+44 (0)20 7946 0018") into E.164 digits without the
// plus ("821012345678"). A national number (leading 0, no country code) is
// refused: WhatsApp addresses every account by its international number.
func normalisePhone(s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", errors.New("empty phone number")
	}
	international := false
	switch {
	case strings.HasPrefix(in, "+"):
		international, in = true, in[1:]
	case strings.HasPrefix(in, "00"):
		international, in = true, in[2:]
	}
	// "(0)" marks a trunk prefix that is dialled only inside the country.
	in = strings.ReplaceAll(in, "(0)", "")
	var b strings.Builder
	for _, r := range in {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || r == '\u00a0':
		default:
			return "", fmt.Errorf("phone number %q: unexpected %q", s, r)
		}
	}
	digits := b.String()
	switch {
	case strings.HasPrefix(digits, "0") && !international:
		return "", fmt.Errorf("phone number %q: national form; write it with the country code, e.g. \"+82 10-1234-5678\"", s)
	case strings.HasPrefix(digits, "0"):
		return "", fmt.Errorf("phone number %q: a country code does not start with 0", s)
	case len(digits) < 7 || len(digits) > 15:
		// E.164 allows at most 15 digits; whatsmeow refuses 6 or fewer.
		return "", fmt.Errorf("phone number %q: %d digits; an international number has 7 to 15", s, len(digits))
	}
	return digits, nil
}

// parseAddress returns the JID to send to. An address is a phone number, or
// a user JID as it appears in inbound messages ("821012345678@s.whatsapp.net",
// or "…@lid" for a sender whose phone number WhatsApp hides). phone is the
// E.164 digits for a phone address, "" for a LID.
func parseAddress(addr string) (jid types.JID, phone string, err error) {
	if !strings.Contains(addr, "@") {
		phone, err = normalisePhone(addr)
		if err != nil {
			return types.JID{}, "", err
		}
		return types.NewJID(phone, types.DefaultUserServer), phone, nil
	}
	jid, err = types.ParseJID(strings.TrimSpace(addr))
	if err != nil {
		return types.JID{}, "", fmt.Errorf("whatsapp address %q: %w", addr, err)
	}
	if jid.Device != 0 {
		return types.JID{}, "", fmt.Errorf("whatsapp address %q: names one device; give the user", addr)
	}
	switch jid.Server {
	case types.DefaultUserServer, types.LegacyUserServer:
		phone, err = normalisePhone("+" + jid.User)
		if err != nil {
			return types.JID{}, "", err
		}
		return types.NewJID(phone, types.DefaultUserServer), phone, nil
	case types.HiddenUserServer:
		if jid.User == "" {
			return types.JID{}, "", fmt.Errorf("whatsapp address %q: no user", addr)
		}
		return jid, "", nil
	default:
		return types.JID{}, "", fmt.Errorf("whatsapp address %q: only people can be addressed, not %q", addr, jid.Server)
	}
}

// displayPhone formats E.164 digits for people: "+821012345678".
func displayPhone(digits string) string { return "+" + digits }
