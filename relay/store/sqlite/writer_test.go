package sqlite

import (
	"context"
	"sync"
	"testing"
)

// TestBackgroundYields checks the writer's priority: with 64 foreground
// ops (submissions) and 40 background ops (dispatcher bookkeeping) queued,
// the next batch runs every foreground op and only an eighth as many
// background ops; the rest follow in later batches, none is dropped.
func TestBackgroundYields(t *testing.T) {
	ctx := context.Background()
	st := openTemp(t).(*Store)
	defer st.Close()
	w := st.w
	queued := make(chan struct{}, 128)
	w.queued = func() { queued <- struct{}{} }
	release, held := make(chan struct{}), make(chan struct{})
	go w.do(ctx, func(*wtx) error { close(held); <-release; return nil })
	<-held
	<-queued

	const nfg, nbg = 64, 40
	var mu sync.Mutex
	batchOf := map[bool][]int{} // background? -> batch number of each op
	var wg sync.WaitGroup
	for i := range nfg + nbg {
		background := i%2 == 1 && i < 2*nbg
		wg.Go(func() {
			fn := func(*wtx) error {
				mu.Lock()
				batchOf[background] = append(batchOf[background], w.batches)
				mu.Unlock()
				return nil
			}
			var err error
			if background {
				err = w.doBackground(ctx, fn)
			} else {
				err = w.do(ctx, fn)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	for range nfg + nbg {
		<-queued
	}
	close(release)
	wg.Wait()

	fgBatch, bgFirst := 0, 0
	for _, b := range batchOf[false] {
		fgBatch = max(fgBatch, b)
	}
	for _, b := range batchOf[true] {
		if b <= fgBatch {
			bgFirst++
		}
	}
	if len(batchOf[false]) != nfg || len(batchOf[true]) != nbg {
		t.Fatalf("ran %d foreground and %d background ops, want %d and %d",
			len(batchOf[false]), len(batchOf[true]), nfg, nbg)
	}
	if fgBatch != 2 {
		t.Errorf("foreground ops ran by batch %d, want all in batch 2 (right after the held one)", fgBatch)
	}
	if want := nfg / backgroundShare; bgFirst != want {
		t.Errorf("%d background ops ran with the foreground batch, want %d", bgFirst, want)
	}
}
