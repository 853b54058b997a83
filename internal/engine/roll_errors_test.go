package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/noderoll/noderoll/internal/drain"
)

// Drains cut short together say each cause once, and each stays findable.
func TestDrainErrorsSayEachCauseOnce(t *testing.T) {
	blocked := &drain.BlockedError{Node: "ip-2"}
	err := error(drainErrors{errors.New("draining node ip-1: context deadline exceeded"), blocked, context.DeadlineExceeded})
	if strings.Count(err.Error(), "ip-1") != 1 {
		t.Fatalf("a cause said more than once: %s", err)
	}
	var be *drain.BlockedError
	if !errors.As(err, &be) || be.Node != "ip-2" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("causes lost: %v", err)
	}
}
