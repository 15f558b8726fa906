package daemon

import (
	"github.com/relay-project/relay/config"
	"github.com/relay-project/relay/relay/inbound"
)

// inboundConfig is the pipeline's view of [inbound].
func inboundConfig(cfg *config.Config) inbound.Config {
	in := cfg.Inbound
	return inbound.Config{ForwardTo: in.ForwardTo, AutoReply: in.AutoReply, AutoReplyEvery: in.AutoReplyEvery,
		MaxLength: in.MaxLength, RatePerHour: in.RatePerHour, FormToken: in.FormToken}
}

// Conversations returns the two-way pipeline: customer conversations,
// replies, and the web form (for the web console's Conversations).
func (d *Daemon) Conversations() *inbound.Pipeline { return d.inbound }
