// Package dist holds the files relay ships for installation; its test
// checks the systemd unit with systemd's own analyzer.
package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestUnitVerifiesAndIsHardened runs `systemd-analyze verify` on
// relay.service and requires an exposure of at most 2.0 from
// `systemd-analyze security --offline=yes`.
func TestUnitVerifiesAndIsHardened(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("relay.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "LoadCredential=", "StateDirectory=relay", "WatchdogSec=", "ExecReload="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// verify checks that ExecStart's binary exists: point it at one that does.
	dir := t.TempDir()
	bin, _ := os.Executable()
	text := strings.Replace(string(unit), "/usr/local/bin/relay", bin, 1)
	path := filepath.Join(dir, "relay.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(sa, "security", "--offline=yes", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for relay.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure level %.1f", level)
	if level > 2.0 {
		t.Fatalf("exposure %.1f > 2.0", level)
	}
}
