package config_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay"

	_ "github.com/relay-project/relay/adapters/console"
	_ "github.com/relay-project/relay/adapters/webhook"
)

// TestExampleValidates checks that the shipped relay.example.toml loads
// without problems when its ${VARS} are set. It is skipped when the file
// does not exist yet, or when it uses channel types whose adapters this
// test does not import (the integrator's test, which imports them all,
// covers those).
func TestExampleValidates(t *testing.T) {
	const path = "../relay.example.toml"
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skip("no relay.example.toml yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	var peek struct {
		Channels map[string]struct {
			Type string `toml:"type"`
		} `toml:"channels"`
	}
	if _, err := toml.Decode(string(data), &peek); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for name, ch := range peek.Channels {
		if _, ok := relay.Lookup(ch.Type); !ok {
			t.Skipf("channel %s has type %q, whose adapter this test does not import", name, ch.Type)
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllSubmatch(data, -1) {
		if _, set := os.LookupEnv(string(m[1])); !set {
			t.Setenv(string(m[1]), "example-"+string(m[1]))
		}
	}
	if _, err := config.Parse(path, data); err != nil {
		t.Errorf("the example has problems:\n%v", err)
	}
}
