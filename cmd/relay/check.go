package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/relay-project/relay/config"
)

// cmdCheck validates the configuration and prints every problem.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path := config.Find(*cfgPath)
	cfg, err := config.Load(path)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintln(stderr, p.String())
			}
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ps))
			return 1
		}
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d channels, %d contacts, %d groups)\n", path, len(cfg.Channels), len(cfg.Contacts), len(cfg.Groups))
	return 0
}
