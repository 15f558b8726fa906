package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relay-project/relay/config"
)

// TestExampleConfigValidates: relay.example.toml is valid as shipped, and
// so is every commented channel template once uncommented, with every
// channel type this binary links.
func TestExampleConfigValidates(t *testing.T) {
	data, err := os.ReadFile("../../relay.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("relay.example.toml", data); err != nil {
		t.Fatalf("relay.example.toml as shipped:\n%v", err)
	}

	// Uncomment the channel templates: blocks that start with
	// "# [channels." and run to the next blank line.
	var out []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "# [channels.") {
			in = true
		}
		if in && strings.TrimSpace(line) == "" {
			in = false
		}
		if in {
			line = strings.TrimPrefix(line, "# ")
		}
		out = append(out, line)
	}
	text := strings.Join(out, "\n")
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	text = strings.ReplaceAll(text, "/run/credentials/relay.service/smtp", secret)
	text = strings.ReplaceAll(text, "/run/credentials/relay.service/twilio", secret)
	for k, v := range map[string]string{
		"HOOK_SECRET": "h", "KAKAO_REST_API_KEY": "k", "KAKAO_REFRESH_TOKEN": "r",
		"TELEGRAM_BOT_TOKEN": "123456:ABCdefGHIjklMNOpqrSTUvwxYZ", "LINE_TOKEN": "l", "LINE_SECRET": "s",
		"TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
	} {
		t.Setenv(k, v)
	}
	for _, typ := range []string{"webhook", "kakao", "telegram", "line", "email", "sms", "ntfy"} {
		if !strings.Contains(text, `type = "`+typ+`"`) {
			t.Errorf("relay.example.toml has no template for %s", typ)
		}
	}
	cfg, err := config.Parse("relay.example.toml", []byte(text))
	if err != nil {
		t.Fatalf("templates uncommented:\n%v", err)
	}
	if len(cfg.Channels) < 9 {
		t.Fatalf("only %d channels parsed", len(cfg.Channels))
	}
}
