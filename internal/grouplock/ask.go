package grouplock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// askAnnotation on a lock's Lease asks its holder to stop: a run that
// needs the group (to go back from the upgrade the holder runs) writes it,
// the holder reads it between renewals, stops as if interrupted and
// releases the lock. It names the holder it is for, so that a request
// left behind (its asker killed) never stops a later holder.
const askAnnotation = "noderoll.io/stop-requested"

// ask is the annotation's value.
type ask struct {
	Holder string `json:"holder"` // the identity asked to stop
	By     string `json:"by"`     // the asker's identity
	For    string `json:"for"`    // what the asker will do, as people read it
}

// AskedError is why a holder stopped: another run asked for the group.
type AskedError struct {
	By  Holder
	For string
}

func (e *AskedError) Error() string {
	return fmt.Sprintf("stopped, as %s asked, so that it can %s; that run goes on with the group from here", e.By, e.For)
}

// askToStop asks held's holder to stop and waits, looking again every
// Retry, until the lock is free to take (released, or its holder gone or
// expired: what judge says then) or AskWait has passed; then it withdraws
// the request if it is still there.
func (l acquiring) askToStop(ctx context.Context, held *HeldError) (waitOut string, err error) {
	o := l.o
	req := ask{Holder: held.Holder.identity(), By: o.Self.identity(), For: o.AskFor}
	if err := l.annotate(ctx, func(a map[string]string) {
		b, _ := json.Marshal(req)
		a[askAnnotation] = string(b)
	}); err != nil {
		return "", fmt.Errorf("asking %s to stop: %w", held.Holder, err)
	}
	o.Tell(fmt.Sprintf("%s holds node group %s: asked it to stop so that this run can %s; waiting up to %s for it to give the group up",
		held.Holder, l.group, o.AskFor, o.AskWait))
	deadline := o.Clock.Now().Add(o.AskWait)
	defer l.withdraw(context.WithoutCancel(ctx), req)
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s to give node group %s up: %w", held.Holder, l.group, ctx.Err())
		case <-time.After(o.Retry):
		}
		waitOut, err := l.judge(ctx)
		var still *HeldError
		switch {
		case !errors.As(err, &still):
			return waitOut, err // free to take, or failed to read
		case still.Holder != held.Holder:
			return "", err // another run took it meanwhile
		case !o.Clock.Now().Before(deadline):
			return "", fmt.Errorf("%s was asked to stop %s ago and still holds node group %s (a noderoll that does not read such requests, or one stuck): "+
				"stop it (Ctrl-C where it runs, or kill its process), then run this again: %w", held.Holder, o.AskWait, l.group, err)
		}
	}
}

// withdraw removes the request if it is still the one written.
func (l acquiring) withdraw(ctx context.Context, req ask) {
	_ = l.annotate(ctx, func(a map[string]string) {
		var got ask
		if json.Unmarshal([]byte(a[askAnnotation]), &got) == nil && got == req {
			delete(a, askAnnotation)
		}
	})
}

// annotate changes the Lease's annotations, read fresh on a conflict
// (its holder renews it meanwhile).
func (l acquiring) annotate(ctx context.Context, change func(map[string]string)) error {
	leases := l.client.CoordinationV1().Leases(l.o.Namespace)
	for attempt := 0; ; attempt++ {
		lease, err := leases.Get(ctx, l.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // released and gone: nothing to ask or withdraw
		}
		if err != nil {
			return err
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		change(lease.Annotations)
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && attempt < 5 {
			continue
		}
		return err
	}
}

// watchAsks reads the held lock's Lease every retry until done ends, and
// ends asked with an *AskedError as its cause once a request to stop
// names this holder.
func watchAsks(done <-chan struct{}, client kubernetes.Interface, namespace, name string, self Holder, retry time.Duration, asked context.CancelCauseFunc) {
	leases := client.CoordinationV1().Leases(namespace)
	for {
		select {
		case <-done:
			return
		case <-time.After(retry):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a slow read is not a missed one
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		cancel()
		if err != nil {
			continue // the renewals report a lock in trouble, not this
		}
		var req ask
		if json.Unmarshal([]byte(lease.Annotations[askAnnotation]), &req) != nil || req.Holder != self.identity() {
			continue
		}
		asked(&AskedError{By: parseHolder(req.By), For: req.For})
		return
	}
}
