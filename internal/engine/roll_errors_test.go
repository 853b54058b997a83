package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/noderoll/noderoll/internal/drain"
)

// Drains cut short together say each cause once, and each stays findable.
func TestDrainErrorsSayEachCauseOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		blocked := &drain.BlockedError{Node: "ip-2"}
		// Drains cut short by one deadline may fail alike: the same cause is
		// said once, each distinct one kept.
		cut := func() error { return fmt.Errorf("draining node ip-1: %w", context.DeadlineExceeded) }
		err := error(drainErrors{cut(), blocked, cut(), context.DeadlineExceeded, context.DeadlineExceeded})
		if n := strings.Count(err.Error(), "draining node ip-1"); n != 1 {
			t.Fatalf("a cause said %d times: %s", n, err)
		}
		if n := strings.Count(err.Error(), context.DeadlineExceeded.Error()); n != 2 {
			t.Fatalf("want ip-1's cause and the bare deadline, each once (%d): %s", n, err)
		}
		var be *drain.BlockedError
		if !errors.As(err, &be) || be.Node != "ip-2" || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("causes lost: %v", err)
		}
	})
}
