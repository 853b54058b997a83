package controller

import (
	"errors"
	"reflect"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/preflight"
)

// stop is how the controller names why an upgrade stopped, and says what to
// do in the resource's own terms (the CLI says it in flags).
type stop struct{ reason, advice string }

// retryHint is how a stopped upgrade goes on: any edit of the spec (a new
// generation) starts a worker that resumes it from its record.
const retryHint = " Edit the spec (for example a longer timeout, or spec.action: Abort to go back) and the controller resumes from where it stopped."

func stopOf(err error) stop {
	var (
		blocked  *drain.BlockedError
		creation *engine.NodeCreationError
		resized  *engine.SizesChangedError
		budgets  *drain.MultipleBudgetsError
		comeback *drain.ComebackError
		pre      *preflight.BlockedError
		down     *engine.DowngradeError
		held     *grouplock.HeldError
		managed  *engine.ManagedUpdateError
	)
	switch {
	case errors.As(err, &pre):
		return stop{"PreflightBlocked", " Nothing was changed. Fix what the findings name, or list their checks in spec.ignorePreflight."}
	case errors.As(err, &down):
		return stop{"Downgrade", ""} // its message says it all, in the resource's terms
	case errors.Is(err, engine.ErrTargetMismatch):
		return stop{"AnotherUpgrade", " Nothing was changed. Finish that upgrade first (a NodeGroupUpgrade with its target, or the CLI), then this one runs on an edit of its spec."}
	case errors.As(err, &held):
		return stop{"Locked", " Nothing was changed; the controller tries again on an edit of the spec."}
	case errors.As(err, &comeback):
		return stop{"PodComesBack", " A controller binds the pod to the node again after every deletion; stop it or keep it off the node." + retryHint}
	case errors.As(err, &blocked):
		return stop{"EvictionRefused", " Fix the budget or webhook named, or set spec.force." + retryHint}
	case errors.As(err, &creation):
		return stop{"NodesDidNotCome", " The group stays surged. Fix the cause (capacity, AMI, bootstrap; see the Auto Scaling group's activities), or raise spec.nodeReadyTimeout." + retryHint}
	case errors.As(err, &resized):
		return stop{"GroupResized", " Something else resized the Auto Scaling group; noderoll did not undo it." + retryHint}
	case errors.As(err, &budgets):
		return stop{"PodUnderTwoBudgets", " The Eviction API never evicts a pod two PodDisruptionBudgets select; fix the budgets." + retryHint}
	case errors.As(err, &managed):
		return stop{"ManagedUpdateFailed", " EKS's own update failed; see its reason above."}
	}
	return stop{"Stopped", retryHint}
}

// explain is the status message of a stopped upgrade: the cause, then what
// to do.
func explain(err error) (reason, msg string) {
	s := stopOf(err)
	return s.reason, err.Error() + "." + s.advice
}

func equalStatus(a, b *v1alpha1.NodeGroupUpgradeStatus) bool { return reflect.DeepEqual(a, b) }
