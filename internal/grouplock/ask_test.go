package grouplock

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// withResourceVersions makes the fake refuse a Lease update written over
// a version it no longer has, as the API server does: the holder's
// renewals then keep what another wrote meanwhile (the fake alone would
// write its stale copy over the request to stop).
func withResourceVersions(c *fake.Clientset) *fake.Clientset {
	var mu sync.Mutex // the check and the write as one, as etcd does
	gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
	// A created Lease has a version, as the API server's answer does (a
	// holder renewing its copy of an unversioned one would write over
	// anything written meanwhile).
	c.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease).ResourceVersion = "1"
		return false, nil, nil
	})
	c.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		cur, err := c.Tracker().Get(gvr, l.Namespace, l.Name)
		if err != nil {
			return true, nil, err
		}
		have := cur.(*coordinationv1.Lease).ResourceVersion
		if l.ResourceVersion != "" && l.ResourceVersion != have {
			return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), l.Name, errors.New("the object has been modified"))
		}
		n, _ := strconv.Atoi(have)
		l.ResourceVersion = strconv.Itoa(n + 1)
		if err := c.Tracker().Update(gvr, l, l.Namespace); err != nil {
			return true, nil, err
		}
		return true, l, nil
	})
	return c
}

// A run that goes back asks the run holding the group to stop: the
// holder's work ends with an *AskedError naming the asker, it releases the
// lock, the asker takes it, and the request is gone from the Lease.
func TestAHolderAskedToStopGivesTheGroupUp(t *testing.T) {
	c := withResourceVersions(fake.NewClientset())
	h, err := Acquire(context.Background(), c, "lock", group, nil, fast(here, true))
	if err != nil {
		t.Fatal(err)
	}
	work, cancel := h.Guard(context.Background())
	stopped := make(chan error, 1)
	go func() {
		<-work.Done()
		stopped <- context.Cause(work)
		cancel()
		h.Release()
	}()

	var told []string
	o := fast(there, true)
	o.AskFor, o.AskWait = "go back (--rollback)", 10*time.Second
	o.Tell = func(msg string) { told = append(told, msg) }
	asker, err := Acquire(context.Background(), c, "lock", group, nil, o)
	if err != nil {
		t.Fatalf("the asker did not get the lock: %v", err)
	}
	defer asker.Release()

	var asked *AskedError
	if cause := <-stopped; !errors.As(cause, &asked) || asked.By != there || asked.For != "go back (--rollback)" {
		t.Fatalf("the holder stopped with %v, want an AskedError by %v", cause, there)
	}
	if msg := asked.Error(); !strings.Contains(msg, "noderoll (pid 200) on host bastion run by ben") || !strings.Contains(msg, "go back (--rollback)") {
		t.Errorf("the holder's reason does not name the asker and what for: %s", msg)
	}
	if len(told) != 1 || !strings.Contains(told[0], "noderoll (pid 100) on host laptop run by ana holds node group "+group+": asked it to stop") {
		t.Errorf("the asker told %q, want one line naming the holder", told)
	}
	l := lease(t, c)
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != there.identity() {
		t.Fatalf("holder %q, want the asker %q", got, there.identity())
	}
	if a, ok := l.Annotations[askAnnotation]; ok {
		t.Errorf("the request is still on the Lease: %s", a)
	}
}

// A holder that does not stop (a noderoll that does not read requests) is
// waited for AskWait, then the asker is refused naming it, and its request
// is withdrawn so that it never stops that run later.
func TestAHolderThatDoesNotStopIsNamedAfterTheWait(t *testing.T) {
	c := fake.NewClientset(held(here, time.Now(), 30))
	o := fast(there, true)
	o.AskFor, o.AskWait = "abort the upgrade (--abort)", 500*time.Millisecond
	start := time.Now()
	_, err := Acquire(context.Background(), c, "lock", group, nil, o)
	var refused *HeldError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "was asked to stop 500ms ago and still holds node group") {
		t.Fatalf("want a refusal naming the wait, got %v", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("refused after %v, before the 500ms wait", waited)
	}
	if a, ok := lease(t, c).Annotations[askAnnotation]; ok {
		t.Errorf("the request was left on the Lease: %s", a)
	}
}

// A request left for another holder (its asker killed before withdrawing
// it) does not stop the run that holds the lock now; nor is a
// controller asked (its resource's spec says what it does).
func TestARequestForAnotherHolderIsIgnored(t *testing.T) {
	l := held(there, time.Now().Add(-time.Minute), 1)
	l.Annotations = map[string]string{askAnnotation: `{"holder":"bastion/200/ben/bbbbb","by":"x/1/y/zzzzz","for":"go back"}`}
	c := fake.NewClientset(l)
	var reads atomic.Int32 // the holder's looks at its Lease
	c.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		reads.Add(1)
		return false, nil, nil
	})
	h, err := Acquire(context.Background(), c, "lock", group, nil, fast(here, true))
	if err != nil {
		t.Fatal(err)
	}
	work, cancel := h.Guard(context.Background())
	// Counted in reads, not time: on a slow machine it takes longer.
	from, deadline := reads.Load(), time.Now().Add(time.Minute)
	for reads.Load() < from+5 && time.Now().Before(deadline) && work.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if work.Err() != nil {
		t.Fatalf("the new holder was stopped by a request for its predecessor: %v", context.Cause(work))
	}
	if n := reads.Load() - from; n < 5 {
		t.Fatalf("the holder read its Lease %d times in a minute, want 5", n)
	}
	if _, ok := lease(t, c).Annotations[askAnnotation]; !ok {
		t.Fatal("the predecessor's request is gone: nothing was ignored")
	}
	cancel()
	h.Release()

	ctrl := ControllerHolder("noderoll-system", "noderoll", "noderoll-0").Worker()
	c = fake.NewClientset(held(ctrl, time.Now(), 30))
	o := fast(there, true)
	o.AskFor = "go back (--rollback)"
	if _, err := Acquire(context.Background(), c, "lock", group, nil, o); !errors.As(err, new(*HeldError)) || !strings.Contains(err.Error(), "spec.paused") {
		t.Fatalf("a controller's lock: want the refusal that names its resource, got %v", err)
	}
	if _, ok := lease(t, c).Annotations[askAnnotation]; ok {
		t.Error("a controller was asked to stop")
	}
}

// A run that may not ask (MayAsk refuses: the holder already goes back) is
// refused at once with that reason and the holder's name, and writes no
// request.
func TestARunThatMayNotAskIsRefusedWithoutAsking(t *testing.T) {
	c := fake.NewClientset(held(here, time.Now(), 30))
	o := fast(there, true)
	o.AskFor = "go back (--rollback)"
	o.MayAsk = func(context.Context) error {
		return errors.New("c/ng is being rolled back already: wait for that run to end")
	}
	_, err := Acquire(context.Background(), c, "lock", group, nil, o)
	if err == nil || !strings.Contains(err.Error(), "is being rolled back already") || !strings.Contains(err.Error(), "held by noderoll (pid 100) on host laptop") {
		t.Fatalf("want the refusal naming the holder, got %v", err)
	}
	if _, ok := lease(t, c).Annotations[askAnnotation]; ok {
		t.Error("a request was written")
	}
}
