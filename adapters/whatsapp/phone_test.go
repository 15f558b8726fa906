package whatsapp

import (
	"strings"
	"testing"
)

func TestNormalisePhone(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{"+82 10-1234-5678", "821012345678", ""},
		{"+821012345678", "821012345678", ""},
		{"0082 10 1234 5678", "821012345678", ""},
		{"821012345678", "821012345678", ""},
		{"+1 (415) 555-0100", "14155550100", ""},
		{"+44 (0)20 7946 0018", "442079460018", ""},
		{"+49.30.1234567", "49301234567", ""},
		{" +33 6 12 34 56 78 ", "33612345678", ""},
		{"010-1234-5678", "", "national"},
		{"+0 10 1234", "", "country code"},
		{"+82 10-1234-567x", "", "unexpected"},
		{"+12345", "", "digits"},
		{"+1234567890123456", "", "digits"},
		{"", "", "empty"},
	}
	for _, tc := range cases {
		got, err := normalisePhone(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("normalisePhone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("normalisePhone(%q) = %q, %v; want an error about %q", tc.in, got, err, tc.err)
		}
	}
}

func TestParseAddress(t *testing.T) {
	cases := []struct {
		in, jid, phone string
		ok             bool
	}{
		{"+82 10-1234-5678", "821012345678@s.whatsapp.net", "821012345678", true},
		{"821012345678@s.whatsapp.net", "821012345678@s.whatsapp.net", "821012345678", true},
		{"821012345678@c.us", "821012345678@s.whatsapp.net", "821012345678", true},
		{"123456789@lid", "123456789@lid", "", true},
		{"821012345678:3@s.whatsapp.net", "", "", false},
		{"120363000000@g.us", "", "", false},
		{"nobody", "", "", false},
	}
	for _, tc := range cases {
		jid, phone, err := parseAddress(tc.in)
		if tc.ok != (err == nil) || (tc.ok && (jid.String() != tc.jid || phone != tc.phone)) {
			t.Errorf("parseAddress(%q) = %q, %q, %v", tc.in, jid, phone, err)
		}
		if vErr := (&Config{}).ValidateAddress(tc.in); (vErr == nil) != tc.ok {
			t.Errorf("ValidateAddress(%q) = %v", tc.in, vErr)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string // "" = valid; else the key the first error starts with
	}{
		{Config{}, ""},
		{Config{Session: "/var/lib/relay/whatsapp.db", RecipientInterval: "5s", BulkWindow: "1h", SendsPerMinute: 10, BulkRecipients: 3}, ""},
		{Config{Dialect: "postgres", DSN: "postgres://relay@db/relay"}, ""},
		{Config{Dialect: "postgres"}, "dsn:"},
		{Config{Dialect: "mysql"}, "dialect:"},
		{Config{DSN: "postgres://x"}, "dsn:"},
		{Config{Session: "wa.db?mode=ro"}, "session:"},
		{Config{RecipientInterval: "soon"}, "recipient_interval:"},
		{Config{BulkWindow: "-1m"}, "bulk_window:"},
		{Config{SendsPerMinute: -1}, "sends_per_minute:"},
		{Config{BulkRecipients: -1}, "bulk_recipients:"},
	}
	for _, tc := range cases {
		errs := tc.cfg.Validate()
		if tc.want == "" {
			if len(errs) != 0 {
				t.Errorf("%+v: %v", tc.cfg, errs)
			}
			continue
		}
		if len(errs) == 0 || !strings.HasPrefix(errs[0].Error(), tc.want) {
			t.Errorf("%+v: %v, want an error on %s", tc.cfg, errs, tc.want)
		}
	}
}
