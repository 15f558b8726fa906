package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/store/storetest"
)

func TestConversationConformance(t *testing.T) {
	storetest.RunConversations(t, openTemp)
}

// TestConversationSurvivesReopen checks that a recorded inquiry and its
// forward are on disk once Record returns, and that tags keep counting
// after a restart.
func TestConversationSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.T0
	c, err := s.OpenConversation(ctx, relay.Conversation{ID: "01CONV1", Channel: "line", SenderID: "U1", CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	fwd := &relay.Message{ID: "01MFWD", Kind: relay.KindInbound, Text: "[LINE] hi", CreatedAt: t0, ExpiresAt: t0.Add(1e12),
		ConversationID: c.ID, Deliveries: []*relay.Delivery{{ID: "01DFWD", Contact: "owner", NextAt: t0,
			Route: []relay.Hop{{Channel: "kakao", Address: "me"}}}}}
	if _, err := s.Record(ctx, relay.ConversationEntry{Message: relay.ConversationMessage{ConversationID: c.ID,
		Direction: relay.DirectionIn, Channel: "line", UpstreamID: "ev1", Text: "hi", At: t0}, Submit: fwd, Now: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ds, err := s.Claim(ctx, t0, 5); err != nil || len(ds) != 1 || ds[0].MessageID != "01MFWD" {
		t.Fatalf("after reopen the forward is not queued: %v %v", ds, err)
	}
	c2, err := s.OpenConversation(ctx, relay.Conversation{ID: "01CONV2", Channel: "line", SenderID: "U2", CreatedAt: t0})
	if err != nil || c2.Seq != 2 {
		t.Fatalf("second conversation after reopen: %+v %v", c2, err)
	}
}
