package sandbox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLockWaitsSayingSoAndGivesUpWithTheContext(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	unlock, err := lock(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A second command waits, says so, and gives up when cancelled.
	var out bytes.Buffer
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := lock(short, dir, &out); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a cancelled wait: %v, want the context's error", err)
	}
	if !strings.Contains(out.String(), "Waiting for another noderoll sandbox command on "+dir) {
		t.Fatalf("the wait was silent: %q", out.String())
	}

	// Once the holder lets go, the waiter gets the lock.
	got := make(chan error, 1)
	go func() {
		u, err := lock(ctx, dir, nil)
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the lock after it was released")
	}
}
