package engine

import (
	"fmt"
	"testing"

	"github.com/noderoll/noderoll/internal/rollout"
)

// After a kill at 300 nodes the resumed drains were all numbered 156/301:
// nodes the killed run had marked counted as in flight before any was
// restarted, and an instance recorded terminated but still listed in
// service counted twice.
func TestResumedDrainsAreNumberedOneByOneOutOfTheGroup(t *testing.T) {
	var instances []rollout.Instance
	var replaced []string
	for k := range 300 {
		id := fmt.Sprintf("i-%03d", k)
		i := rollout.Instance{ID: id, Old: true}
		switch {
		case k < 149:
			i.Terminated, i.Leaving = true, true
			replaced = append(replaced, id)
		case k == 149: // terminated by the killed run, not yet seen leaving
			replaced = append(replaced, id)
		case k < 205: // marked by the killed run
			i.Mark = rollout.Replacing
		}
		instances = append(instances, i)
	}
	started := map[string]bool{}
	for want := 151; want <= 153; want++ {
		k, of := replaceNumber(replaced, instances, func(id string) bool { return started[id] })
		if k != want || of != 300 {
			t.Fatalf("drain numbered %d/%d, want %d/300", k, of, want)
		}
		started[fmt.Sprintf("i-%03d", want)] = true
	}
	// The first of them drained, waited and terminated: the next number
	// goes on from 154 rather than taking a number given already.
	replaced = append(replaced, "i-151")
	instances[151].Terminated, instances[151].Leaving = true, true
	if k, of := replaceNumber(replaced, instances, func(id string) bool { return started[id] }); k != 154 || of != 300 {
		t.Fatalf("after a numbered node was terminated the next drain is %d/%d, want 154/300", k, of)
	}
}
