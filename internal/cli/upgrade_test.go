package cli

import (
	"io"
	"sync"
	"testing"

	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/progress"
)

// Drains report refused evictions at once; the count misses none (and,
// under -race, nothing races).
func TestBlockCounterCountsConcurrentDrains(t *testing.T) {
	view := progress.NewView(io.Discard, false, clock.RealClock{})
	defer view.Close()
	b := &blockCounter{View: view}
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Blocked("node-"+string(rune('a'+k)), []drain.Blocker{{Namespace: "default", Pod: "web"}, {Namespace: "default", Pod: "api"}})
			}
		}()
	}
	wg.Wait()
	if got := b.n.Load(); got != 8*100*2 {
		t.Fatalf("counted %d refused evictions, want %d", got, 8*100*2)
	}
}
