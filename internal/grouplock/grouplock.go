// Package grouplock keeps one upgrade per node group at a time: a
// coordination.k8s.io Lease named for the cluster and group, held through
// client-go's leader election (renewed while the run lasts, released at its
// end, taken over once its holder stopped renewing it).
//
// A second run is refused at once, naming the holder, its host and since
// when. A holder that died is found in two ways: on the same host its
// process is gone (taken over at once, as a rerun after a crash needs), and
// elsewhere its lease expired (taken over after the lease's duration, timed
// by this process's clock, as leader election does, so clock skew between
// hosts cannot hand the lock to two runs).
package grouplock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Holder says who holds a lock: a process on a host. It is written into the
// Lease's holderIdentity as "host/pid/user/nonce", which Parse reads back.
type Holder struct {
	Host string
	PID  int
	User string
	// Nonce tells apart two holders of one pid (a restarted container):
	// "<process>" or, for one worker of a process, "<process>.<worker>".
	Nonce string
}

// Worker is a holder of its own for one worker of this process: the lock
// then tells two workers apart, as it tells two processes apart.
func (h Holder) Worker() Holder {
	if h == (Holder{}) {
		h = Self()
	}
	h.Nonce = h.process() + "." + rand.String(5)
	return h
}

// process is the nonce of the process, without a worker's.
func (h Holder) process() string {
	p, _, _ := strings.Cut(h.Nonce, ".")
	return p
}

// Self is this process as a holder.
func Self() Holder {
	host, _ := os.Hostname()
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return Holder{Host: host, PID: os.Getpid(), User: name, Nonce: rand.String(5)}
}

func (h Holder) identity() string {
	return strings.Join([]string{h.Host, strconv.Itoa(h.PID), h.User, h.Nonce}, "/")
}

// String is the holder as people read it.
func (h Holder) String() string {
	if lease, ok := strings.CutPrefix(h.Host, "controller."); ok {
		ns, name, _ := strings.Cut(lease, ".")
		return fmt.Sprintf("the noderoll controller led through Lease %s/%s (pod %s)", ns, name, h.User)
	}
	s := fmt.Sprintf("noderoll (pid %d) on host %s", h.PID, h.Host)
	if h.User != "" {
		s += " run by " + h.User
	}
	return s
}

// controller says the holder is a controller's (its Host its leader Lease,
// not a machine whose processes can be asked).
func (h Holder) controller() bool { return strings.HasPrefix(h.Host, "controller.") }

// parseHolder reads a holderIdentity back; one that is not noderoll's stays
// whole in Host.
func parseHolder(id string) Holder {
	parts := strings.Split(id, "/")
	if len(parts) == 4 {
		if pid, err := strconv.Atoi(parts[1]); err == nil {
			return Holder{Host: parts[0], PID: pid, User: parts[2], Nonce: parts[3]}
		}
	}
	return Holder{Host: id}
}

// Options tune the lock; the zero value takes the defaults.
type Options struct {
	Namespace string // default kube-system
	// Duration is how long a lease lasts without renewal before another run
	// may take it over (default 30s); it is renewed every Retry (default 4s)
	// and given up when not renewed within RenewDeadline (default 20s).
	Duration, RenewDeadline, Retry time.Duration
	Self                           Holder
	Log                            *slog.Logger
	// Tell says to the run's user what the lock does on their behalf that
	// they did not ask for: taking over a gone holder's lock, or waiting for
	// an expired one. Unset, it is logged at Info.
	Tell func(msg string)
	// AskFor, when set, asks a run that holds the lock (a CLI's, not a
	// controller's, whose resource says what it does) to stop so that this
	// one can do what AskFor says ("go back (--rollback)"), rather than be
	// refused; Acquire waits up to AskWait (default 2m) for it to stop.
	AskFor  string
	AskWait time.Duration
	// MayAsk, when set, is asked before a holder is: an error refuses this
	// run instead (the holder already does what this run would).
	MayAsk func(ctx context.Context) error
	// Clock reads the time this process judges a lease's expiry by
	// (default the real one).
	Clock clock.PassiveClock
	// alive says whether a process of this host runs; tests replace it.
	alive func(pid int) bool
}

// ControllerHolder is the holder of a leader-elected controller: the same
// Host for every replica and restart (its leader Lease), the pod in User.
// Each worker holds its locks as a Worker of it. A lock held by another
// replica (a leader cut off from the API server may still act) is taken
// only once its lease expired; one held by an earlier process of the same
// pod (a restarted container: the old process is gone) at once.
func ControllerHolder(leaseNamespace, leaseName, pod string) Holder {
	return Holder{Host: "controller." + leaseNamespace + "." + leaseName, PID: os.Getpid(), User: pod, Nonce: rand.String(5)}
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = "kube-system"
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 20 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Retry == 0 {
		o.Retry = 4 * time.Second
	}
	if o.Self == (Holder{}) {
		o.Self = Self()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.alive == nil {
		o.alive = processAlive
	}
	if o.AskWait == 0 {
		o.AskWait = 2 * time.Minute
	}
	if o.Tell == nil {
		log := o.Log
		o.Tell = func(msg string) { log.Info(msg) }
	}
	return o
}

// HeldError refuses a run because another holds the group's lock.
type HeldError struct {
	Lease   string // namespace/name
	Group   string
	Holder  Holder
	Since   time.Time // acquired
	Renewed time.Time
	Ago     time.Duration // since the last renewal, when refused
	Expires time.Duration // lease duration after the last renewal
}

func (e *HeldError) Error() string {
	if strings.HasPrefix(e.Holder.Host, "controller.") {
		return fmt.Sprintf("node group %s is being upgraded by %s (lease %s, held since %s, last renewed %s ago): a NodeGroupUpgrade runs it; "+
			"to take it over set that resource's spec.paused to true (or delete it) and rerun; if the controller died, the lock is taken over %s after its last renewal",
			e.Group, e.Holder, e.Lease, e.Since.UTC().Format(time.RFC3339), e.Ago.Round(time.Second), e.Expires)
	}
	return fmt.Sprintf("node group %s is being upgraded by %s (lease %s, held since %s, last renewed %s ago): wait for that run to finish or stop it; "+
		"if its process died, the lock is taken over %s after its last renewal (at once on the same host)",
		e.Group, e.Holder, e.Lease, e.Since.UTC().Format(time.RFC3339), e.Ago.Round(time.Second), e.Expires)
}

// LostError says the lock was lost while the run held it: renewals failed
// (the API server was out of reach) or another run took it over.
type LostError struct{ Lease string }

func (e *LostError) Error() string {
	return fmt.Sprintf("lost the lock %s while upgrading (it could not be renewed in time): stopped, so that two runs never act on the group; run again to resume", e.Lease)
}

// Held is a lock this process holds.
type Held struct {
	lease    string
	ctx      context.Context // ends when the lock is released or lost
	stop     context.CancelFunc
	done     chan struct{}
	released bool
	// asked ends, its cause an *AskedError, when another run asks this
	// one to stop (see AskFor).
	asked context.Context
}

// Guard derives from parent a context that also ends when the lock is
// lost (its cause a *LostError) or another run asks for the group (an
// *AskedError): work done under the lock runs in it. Call its cancel
// before Release.
func (h *Held) Guard(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stopLost := context.AfterFunc(h.ctx, func() { cancel(&LostError{Lease: h.lease}) })
	stopAsked := context.AfterFunc(h.asked, func() {
		if asked := new(AskedError); errors.As(context.Cause(h.asked), &asked) {
			cancel(asked)
		} // else the lock ended: the LostError above
	})
	return ctx, func() {
		stopLost()
		stopAsked()
		cancel(nil)
	}
}

// Release gives the lock up (the next run takes it at once) and waits until
// that is written.
func (h *Held) Release() {
	if h.released {
		return
	}
	h.released = h.ctx.Err() == nil
	h.stop()
	<-h.done
}

// Acquire takes the lock name for group (both as people read them), or
// refuses with a *HeldError when a live run holds it.
func Acquire(ctx context.Context, client kubernetes.Interface, name, group string, labels map[string]string, o Options) (*Held, error) {
	o = o.withDefaults()
	l := acquiring{client: client, name: name, group: group, labels: labels, desc: o.Namespace + "/" + name, o: o}
	waitOut, err := l.judge(ctx)
	var held *HeldError
	if errors.As(err, &held) && o.AskFor != "" && held.Holder.PID > 0 && !held.Holder.controller() {
		if o.MayAsk != nil {
			if refused := o.MayAsk(ctx); refused != nil {
				return nil, fmt.Errorf("%w (held by %s)", refused, held.Holder)
			}
		}
		waitOut, err = l.askToStop(ctx, held)
	}
	if err != nil {
		return nil, err
	}
	return l.elect(ctx, waitOut)
}

// acquiring is one group's lock as Acquire takes it.
type acquiring struct {
	client      kubernetes.Interface
	name, group string
	labels      map[string]string
	desc        string // namespace/name, as messages say it
	o           Options
}

func (l acquiring) lock() *resourcelock.LeaseLock {
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.o.Namespace, Name: l.name},
		Client:     l.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.o.Self.identity()},
		Labels:     l.labels,
	}
}

// judge decides from the lease as it stands: refuse (a HeldError), take
// it over at once from a dead process of this host, or wait out an
// expired lease (the holder returned, whose leadership is no other's).
func (l acquiring) judge(ctx context.Context) (waitOut string, err error) {
	o := l.o
	for attempt := 0; ; attempt++ {
		lock := l.lock()
		rec, _, err := lock.Get(ctx)
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("reading the lock %s of node group %s: %w", l.desc, l.group, err)
		}
		if rec.HolderIdentity == "" {
			return "", nil // released
		}
		holder := parseHolder(rec.HolderIdentity)
		lasts := time.Duration(rec.LeaseDurationSeconds) * time.Second
		switch {
		case o.Self.controller() && holder.Host == o.Self.Host && holder.User == o.Self.User && holder.process() != o.Self.process(),
			!o.Self.controller() && holder.Host == o.Self.Host && holder.PID > 0 && !o.alive(holder.PID):
			// An earlier process of this controller's pod, or a process of
			// this host that is gone: nobody renews the lease, take it at
			// once.
			o.Tell(fmt.Sprintf("taking over the lock %s of node group %s from %s, which is gone", l.desc, l.group, holder))
			err := lock.Update(ctx, resourcelock.LeaderElectionRecord{
				LeaseDurationSeconds: 1, AcquireTime: metav1.Now(), RenewTime: metav1.Now(), LeaderTransitions: rec.LeaderTransitions,
			})
			if apierrors.IsConflict(err) && attempt < 3 {
				continue // changed meanwhile: look again
			}
			if err != nil {
				return "", fmt.Errorf("taking over the lock %s of node group %s from %s, which is gone: %w", l.desc, l.group, holder, err)
			}
			return "", nil
		case rec.RenewTime.Add(lasts).Before(o.Clock.Now()):
			o.Tell(fmt.Sprintf("the lock %s of node group %s is held by %s, which stopped renewing it %s ago: taking it over once it expires, in up to %s",
				l.desc, l.group, holder, o.Clock.Since(rec.RenewTime.Time).Round(time.Second), lasts))
			return rec.HolderIdentity, nil
		default:
			return "", &HeldError{Lease: l.desc, Group: l.group, Holder: holder, Since: rec.AcquireTime.Time, Renewed: rec.RenewTime.Time,
				Ago: o.Clock.Since(rec.RenewTime.Time), Expires: lasts}
		}
	}
}

// elect runs client-go's leader election on the lease until this process
// leads (the lock is held), another process does first (refused as if it
// had held it before), or ctx ends. waitOut is the expired holder judge
// chose to wait out, whose name is not another's leadership.
func (l acquiring) elect(ctx context.Context, waitOut string) (*Held, error) {
	o := l.o
	started := make(chan context.Context, 1)
	other := make(chan string, 1)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	// Leader election logs through klog: into our logger, as debug lines
	// (its conflicts and retries are routine here; losing the lock is
	// reported as an error by the run).
	runCtx = klog.NewContext(runCtx, logr.FromSlogHandler(debugOnly{o.Log.Handler()}))
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            l.lock(),
		LeaseDuration:   o.Duration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.Retry,
		ReleaseOnCancel: true,
		Name:            l.desc,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(c context.Context) { started <- c },
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != "" && id != o.Self.identity() && id != waitOut {
					select {
					case other <- id:
					default:
					}
				}
			},
		},
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("setting up the lock %s: %w", l.desc, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(runCtx)
	}()
	select {
	case held := <-started:
		// A controller is never asked (see AskFor): its asked never ends.
		asked, ask := context.WithCancelCause(context.Background())
		watch := !o.Self.controller()
		go func() {
			if watch {
				watchAsks(held.Done(), l.client, o.Namespace, l.name, o.Self, o.Retry, ask)
			}
			<-held.Done()
			ask(nil) // released or lost: Guard's cause says which
		}()
		return &Held{lease: l.desc, ctx: held, stop: stop, done: done, asked: asked}, nil
	case id := <-other:
		stop()
		<-done
		// Another run got there first: refuse as if it had held it before.
		refused := &HeldError{Lease: l.desc, Group: l.group, Holder: parseHolder(id), Expires: o.Duration}
		if rec, _, err := l.lock().Get(ctx); err == nil && rec.HolderIdentity == id {
			refused.Since, refused.Renewed, refused.Ago = rec.AcquireTime.Time, rec.RenewTime.Time, o.Clock.Since(rec.RenewTime.Time)
			refused.Expires = time.Duration(rec.LeaseDurationSeconds) * time.Second
		}
		return nil, refused
	case <-ctx.Done():
		stop()
		<-done
		return nil, fmt.Errorf("waiting for the lock %s of node group %s: %w", l.desc, l.group, ctx.Err())
	}
}

// processAlive says whether a process of this host runs with that pid
// (signal 0 checks without sending anything). A process killed but not yet
// reaped by its parent still answers signal 0: a zombie is dead.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !zombie(pid)
}

// zombie reads the process's state from /proc (the field after the
// command's closing parenthesis): Z or X once it has exited.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z' || b[i+2] == 'X'
	}
	return false
}

// debugOnly hands every record on at debug level.
type debugOnly struct{ slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.Handler.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	// logr hands errors on without asking Enabled first: ask here, or
	// leader election's routine retries reach a run's stderr unasked.
	if !d.Handler.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	r.Level = slog.LevelDebug
	return d.Handler.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(a []slog.Attr) slog.Handler { return debugOnly{d.Handler.WithAttrs(a)} }
func (d debugOnly) WithGroup(n string) slog.Handler      { return debugOnly{d.Handler.WithGroup(n)} }

// Describe is a lease's holderIdentity as people read it.
func Describe(identity string) string { return parseHolder(identity).String() }
