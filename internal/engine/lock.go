package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/grouplock"
)

// WithLock tunes the lock that keeps one run per group (holder, timings).
func WithLock(o grouplock.Options) Option { return func(e *Engine) { e.lockOpts = o } }

// lock takes the group's lock (a Lease beside its record) before anything
// changes. The context it returns ends when the lock is lost, so that the
// run stops rather than act beside another; release gives the lock up.
func (e *Engine) lock(ctx context.Context, g cloud.NodeGroupRef, askFor string) (context.Context, func(), error) {
	o := e.lockOpts
	o.Namespace, o.Log = Namespace, e.log
	if e.opts.AskHolder {
		o.AskFor = askFor
		o.MayAsk = func(ctx context.Context) error { return e.goingBackAlready(ctx, g) }
	}
	if o.Clock == nil {
		o.Clock = e.clock
	}
	if o.Tell == nil {
		o.Tell = e.report.Info // among the run's lines, not a raw log line
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "noderoll", "noderoll.io/nodegroup": sanitizeLabel(g.Name)}
	held, err := grouplock.Acquire(ctx, e.kube, recordName(g.Cluster, g.Name), g.String(), labels, o)
	if err != nil {
		return nil, nil, err
	}
	guarded, cancel := held.Guard(ctx)
	return guarded, func() {
		cancel()
		held.Release()
	}, nil
}

// goingBackAlready refuses to ask a run to stop that already takes the
// group back (a rollback or an abort under way): a second way back would
// only stop the first and go on from where it stopped. The record is read
// without the lock, to decide whether to ask, never to write.
func (e *Engine) goingBackAlready(ctx context.Context, g cloud.NodeGroupRef) error {
	rec, err := e.records(g).Load(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("reading the record of %s: %w", g, err)
	case rec == nil || !rec.Active():
	case rec.Abort != nil:
		return fmt.Errorf("the upgrade of %s is being aborted already: wait for that run to end", g)
	case rec.Phase == PhaseRollingBack:
		return fmt.Errorf("%s is being rolled back already: wait for that run to end", g)
	}
	return nil
}

// stopCause names a lost lock, or another run that asked for the group, as
// the reason a run stopped.
func stopCause(ctx context.Context, err error) error {
	var asked *grouplock.AskedError
	if err != nil && (lockLost(ctx) || errors.As(context.Cause(ctx), &asked)) {
		return context.Cause(ctx)
	}
	return err
}

// lockLost says the run's lock was taken from it: the group, its record
// and the autoscaler's hold are another run's now, and this one changes
// nothing more, not even to clean up.
func lockLost(ctx context.Context) bool {
	var lost *grouplock.LostError
	return errors.As(context.Cause(ctx), &lost)
}

// RunHolder says who holds a group's lock and whether it still renews it:
// a run killed without a word leaves a lease that stops being renewed, one
// that ended released it (no holder).
func RunHolder(ctx context.Context, kube kubernetes.Interface, g cloud.NodeGroupRef, now time.Time) (holder string, live bool, err error) {
	l, err := kube.CoordinationV1().Leases(Namespace).Get(ctx, recordName(g.Cluster, g.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the lock of %s: %w", g, err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return "", false, nil
	}
	until := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	return grouplock.Describe(*l.Spec.HolderIdentity), now.Before(until), nil
}

// locked is a group held by this run: its lock, and its record read under
// it. Everything that changes a group starts here, so that no record is
// read but under the lock that keeps anyone else from writing it.
type locked struct {
	store   RecordStore
	rec     *Record // as read: nil when the group has none
	release func()
}

// lockAndLoad takes the group's lock, then reads its record; the context it
// returns ends if the lock is lost. On an error nothing is held. askFor
// says what a way back asks a run that holds the group to stop for ("":
// refused, as an upgrade is).
func (e *Engine) lockAndLoad(ctx context.Context, g cloud.NodeGroupRef, askFor string) (context.Context, *locked, error) {
	ctx, release, err := e.lock(ctx, g, askFor)
	if err != nil {
		return nil, nil, err
	}
	store := e.records(g)
	rec, err := store.Load(ctx)
	if err != nil {
		release()
		return nil, nil, err
	}
	return ctx, &locked{store: store, rec: rec, release: release}, nil
}
