package main

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCrashLosesNothing runs a real `relay serve` child under concurrent
// load, kills it with SIGKILL mid-flight, restarts it on the same store,
// and checks that every message that got a 202 reaches the sink. Messages
// delivered twice (an attempt interrupted by the kill is resent: the
// webhook payload's delivery_id lets a receiver drop it) are counted and
// reported, not failed.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := relayBinary(t)
	dir := t.TempDir()
	sink := newCountingSink(t)
	cfg, addr := writeConfig(t, dir, sink.url, "")
	c := startChild(t, bin, cfg, addr)

	sub := newSubmitter(c.base, 16)
	var mu sync.Mutex
	var accepted []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := sub.submit(fmt.Sprintf("load %d/%d", w, i))
				if err != nil {
					continue // refused or cut off by the kill: not accepted, not owed
				}
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(700 * time.Millisecond)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	close(stop)
	wg.Wait()
	mu.Lock()
	owed := append([]string(nil), accepted...)
	mu.Unlock()
	if len(owed) == 0 {
		t.Fatal("no message was accepted before the kill")
	}
	beforeRestart, _ := sink.count()

	c2 := startChild(t, bin, cfg, addr)
	defer func() {
		c2.cmd.Process.Signal(syscall.SIGTERM)
		c2.cmd.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		sink.mu.Lock()
		lost := 0
		for _, id := range owed {
			if sink.seen[id] == 0 {
				lost++
			}
		}
		dups := 0
		for _, n := range sink.seen {
			if n > 1 {
				dups += n - 1
			}
		}
		sink.mu.Unlock()
		if lost == 0 {
			t.Logf("accepted %d before SIGKILL (%d delivered before the kill); lost 0; duplicates %d", len(owed), beforeRestart, dups)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never delivered after restart; stderr: %s", lost, len(owed), c2.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
