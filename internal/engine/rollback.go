package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/noderoll/noderoll/internal/cloud"
)

// ErrNothingToRollBack says there is no upgrade the group can go back from.
type ErrNothingToRollBack struct{ Why string }

func (e *ErrNothingToRollBack) Error() string { return "nothing to go back from: " + e.Why }

// RollBack goes back from a blue-green upgrade before its old nodes are
// terminated (during the soak, or earlier): the old nodes take pods again,
// the group launches its original launch template version, the new nodes
// are drained within the pods' budgets and removed, and the sizes,
// scaling processes and cluster-autoscaler are restored. Interrupted, it
// resumes as an upgrade does: run it again.
func (e *Engine) RollBack(ctx context.Context, ref Request) (*Result, error) {
	start := e.clock.Now()
	ctx, o, err := e.open(ctx, ref, "go back ("+e.opts.Terms.Of("rollback")+")")
	if err != nil {
		return nil, err
	}
	defer o.release()
	group, store, rec := o.group, o.store, o.rec
	switch {
	case !rec.Active():
		return nil, &ErrNothingToRollBack{Why: fmt.Sprintf("no upgrade of %s is under way", ref.Group)}
	case rec.Abort != nil:
		return nil, &ErrNothingToRollBack{Why: fmt.Sprintf("the upgrade of %s is being aborted; rerun with %s to finish that", ref.Group, e.opts.Terms.Of("abort"))}
	case rec.Strategy != StrategyBlueGreen:
		return nil, &ErrNothingToRollBack{Why: fmt.Sprintf("the upgrade of %s under way uses strategy %s, whose old nodes are terminated as it goes; only a bluegreen upgrade keeps them to go back to (rerun the upgrade to finish it)", ref.Group, strategyOf(rec))}
	case len(rec.Replaced) > 0 && rec.Phase != PhaseRollingBack:
		return nil, &ErrNothingToRollBack{Why: fmt.Sprintf("the soak of %s is over: %d old instances are terminated already; rerun the upgrade to finish it", ref.Group, len(rec.Replaced))}
	case rec.Phase == PhaseScalingDown:
		return nil, &ErrNothingToRollBack{Why: fmt.Sprintf("the upgrade of %s has replaced every old node", ref.Group)}
	}
	return e.goBack(ctx, start, store, rec, group)
}

// canGoBack says whether a bluegreen upgrade still has its old nodes.
func canGoBack(rec *Record) bool {
	return rec.Strategy == StrategyBlueGreen && rec.Abort == nil && rec.Phase != PhaseScalingDown &&
		(len(rec.Replaced) == 0 || rec.Phase == PhaseRollingBack)
}

// goBack runs a bluegreen upgrade's way back, from its record.
func (e *Engine) goBack(ctx context.Context, start time.Time, store RecordStore, rec *Record, group cloud.NodeGroup) (*Result, error) {
	u, err := e.newUpgrade(ctx, store, rec, group, rec.Spec, rec.Target)
	if err != nil {
		return nil, err
	}
	defer u.close()
	if rec.Phase != PhaseRollingBack {
		rec.Phase = PhaseRollingBack
		if err := u.save(ctx); err != nil {
			return nil, err
		}
	}
	err = stopCause(ctx, u.run(ctx))
	return &Result{Target: rec.Target, Replaced: rec.Replaced, Removed: rec.Removed, Steps: rec.Steps, Duration: e.clock.Since(start)}, err
}

func strategyOf(r *Record) string {
	if r.Strategy == "" {
		return StrategyEKS
	}
	return r.Strategy
}

// opened is a group held under its lock, with its record as it stands.
type opened struct {
	group   cloud.NodeGroup
	store   RecordStore
	rec     *Record
	release func()
}

// open takes the group's lock and reads its record, for the ways back; the
// context it returns ends if the lock is lost. A run that holds the group
// is asked to stop so that this one can do what askFor says (AskHolder).
func (e *Engine) open(ctx context.Context, ref Request, askFor string) (context.Context, *opened, error) {
	if e.invalid != nil {
		return nil, nil, e.invalid
	}
	group, err := e.cloud.NodeGroup(ctx, ref.Group)
	if err != nil {
		return nil, nil, err
	}
	e.members.Add(group.Instances)
	ctx, held, err := e.lockAndLoad(ctx, ref.Group, askFor)
	if err != nil {
		return nil, nil, err
	}
	return ctx, &opened{group: group, store: held.store, rec: held.rec, release: held.release}, nil
}
