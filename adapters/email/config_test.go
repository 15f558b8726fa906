package email

import (
	"mime"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

func TestValidate(t *testing.T) {
	ok := Config{SMTP: "smtp.example.com:587", From: "relay@example.com", Username: "relay", Password: "pw"}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want []string // each problem's key prefix; none for a good config
	}{
		{"good", func(*Config) {}, nil},
		{"implicit", func(c *Config) { c.TLS = "implicit"; c.SMTP = "smtp.example.com:465" }, nil},
		{"none on loopback", func(c *Config) { c.TLS = "none"; c.SMTP = "127.0.0.1:25" }, nil},
		{"none on localhost", func(c *Config) { c.TLS = "none"; c.SMTP = "localhost:25" }, nil},
		{"none on ::1", func(c *Config) { c.TLS = "none"; c.SMTP = "[::1]:25" }, nil},
		{"none on a remote host", func(c *Config) { c.TLS = "none" }, []string{"tls:"}},
		{"none on a LAN address", func(c *Config) { c.TLS = "none"; c.SMTP = "192.0.2.10:25" }, []string{"tls:"}},
		{"unknown tls", func(c *Config) { c.TLS = "ssl" }, []string{"tls:"}},
		{"no smtp", func(c *Config) { c.SMTP = "" }, []string{"smtp:"}},
		{"smtp without port", func(c *Config) { c.SMTP = "smtp.example.com" }, []string{"smtp:"}},
		{"smtp bad port", func(c *Config) { c.SMTP = "smtp.example.com:smtp" }, []string{"smtp:"}},
		{"no from", func(c *Config) { c.From = "" }, []string{"from:"}},
		{"bad from", func(c *Config) { c.From = "relay at example" }, []string{"from:"}},
		{"username without password", func(c *Config) { c.Password = "" }, []string{"password:"}},
		{"password_file counts", func(c *Config) { c.Password = ""; c.PasswordFile = "/run/secret" }, nil},
		{"password without username", func(c *Config) { c.Username = "" }, []string{"username:"}},
		{"two-line prefix", func(c *Config) { c.SubjectPrefix = "a\nBcc: x@y" }, []string{"subject_prefix:"}},
		{"everything wrong", func(c *Config) { *c = Config{TLS: "x", Password: "p"} }, []string{"smtp:", "tls:", "from:", "username:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.mod(&cfg)
			errs := cfg.Validate()
			if len(errs) != len(c.want) {
				t.Fatalf("Validate = %v, want problems with %v", errs, c.want)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), c.want[i]) {
					t.Errorf("problem %q does not start with %q", e, c.want[i])
				}
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(&Config{SMTP: "smtp.example.com:25", TLS: "none", From: "a@b.c"}, relay.Env{}); err == nil {
		t.Fatal("New accepted tls = none for a remote host")
	}
	if _, err := New(&Config{SMTP: "smtp.example.com:587", From: "a@b.c", CAFile: "/nonexistent/ca.pem"}, relay.Env{}); err == nil || !strings.HasPrefix(err.Error(), "ca_file:") {
		t.Fatalf("New with a missing ca_file = %v", err)
	}
}

func TestValidateAddress(t *testing.T) {
	var c Config
	for _, good := range []string{"owner@example.com", "Owner <owner@example.com>", "김민수 <minsu@example.kr>"} {
		if err := c.ValidateAddress(good); err != nil {
			t.Errorf("ValidateAddress(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", "owner", "owner@", "a@b.c, d@e.f", "owner@example.com\r\nBcc: x@y.z"} {
		if err := c.ValidateAddress(bad); err == nil {
			t.Errorf("ValidateAddress(%q) accepted", bad)
		}
	}
}

func TestSubjectOf(t *testing.T) {
	long := strings.Repeat("가", 100)
	for _, c := range []struct{ subject, text, prefix, want string }{
		{"Hello", "body", "", "Hello"},
		{"Hello", "body", "[relay]", "[relay] Hello"},
		{"", "first line\nsecond", "", "first line"},
		{"", "  \n  first after blanks\nx", "", "first after blanks"},
		{"", long, "", strings.Repeat("가", 59) + "…"},
		{"", strings.Repeat("a", 60), "", strings.Repeat("a", 60)},
		{"evil\r\nBcc: x@y.z", "body", "", "evil Bcc: x@y.z"},
		{"", "", "[relay]", "[relay]"},
	} {
		got := subjectOf(&relay.Outgoing{Subject: c.subject, Text: c.text}, c.prefix)
		if got != c.want {
			t.Errorf("subjectOf(%q, %q, %q) = %q, want %q", c.subject, c.text, c.prefix, got, c.want)
		}
	}
}

func TestEncodeHeaderRoundTrip(t *testing.T) {
	dec := new(mime.WordDecoder)
	for _, s := range []string{
		"plain",
		"[relay] 주문 알림: 4번 테이블에서 새 문의가 왔습니다. 확인 부탁드립니다 🙏",
		strings.Repeat("ASCII words that go on ", 8),
		"mixé",
	} {
		enc := encodeHeader(s)
		for i, line := range strings.Split(enc, "\r\n") {
			limit := 78
			if i == 0 {
				limit -= len("Subject: ")
			}
			if len(line) > limit {
				t.Errorf("encoded line %q is %d long", line, len(line))
			}
		}
		// A reader unfolds (drops CRLF before whitespace), then decodes.
		got, err := dec.DecodeHeader(strings.ReplaceAll(enc, "\r\n", ""))
		if err != nil || got != s {
			t.Errorf("round trip of %q = %q (%v) via %q", s, got, err, enc)
		}
	}
}
