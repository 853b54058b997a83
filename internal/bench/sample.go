package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/disruption"
)

// sampler watches a run from outside the engine: PodDisruptionBudget
// breaches (healthy pods below a budget's minimum), the instances in
// service (every 500ms), pod stop times, and a timeline of each budget's
// pods by state next to the budget's own status (every second, to
// timeline.tsv), which shows where a budget's rounds spend their time.
//
// Counts are kept per budget and changed by each pod event alone: at 300
// nodes a run sees tens of thousands of pod events, and recounting 4,000
// pods on each would take a good part of a core from the control plane
// being measured.
type sampler struct {
	mu            sync.Mutex
	budgets       []*watched
	pods          map[types.UID]podState
	breaches      []string
	peakInService int
	stops         []time.Duration
	deleting      map[types.UID]time.Time
	stop          context.CancelFunc
	done          chan struct{}
	indexer       cache.Indexer
	pdbs          cache.Indexer
}

// watched is one budget and its pods counted by state.
type watched struct {
	pdb      policyv1.PodDisruptionBudget
	count    [states]int
	inBreach bool
}

// A pod's state as a budget sees it.
const (
	healthy     = iota // Ready, not being deleted
	unbound            // not yet scheduled
	starting           // scheduled, not Ready
	terminating        // being deleted
	states
)

var stateNames = [states]string{"healthy", "pending", "starting", "terminating"}

type podState struct {
	budgets []int
	state   int
}

func startSampler(ctx context.Context, kube kubernetes.Interface, asg *autoscaling.Client, timeline string) (*sampler, error) {
	list, err := kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{pods: map[types.UID]podState{}, deleting: map[types.UID]time.Time{}, stop: cancel, done: make(chan struct{})}
	for _, b := range list.Items {
		s.budgets = append(s.budgets, &watched{pdb: b})
	}
	factory := informers.NewSharedInformerFactory(kube, 0)
	inf := factory.Core().V1().Pods().Informer()
	pdbInf := factory.Policy().V1().PodDisruptionBudgets().Informer()
	s.indexer, s.pdbs = inf.GetIndexer(), pdbInf.GetIndexer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced, pdbInf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod informer did not sync")
	}
	// The counts start from the full cache, so that no budget is seen
	// short while they fill; the handler's first adds of the same pods
	// then change nothing.
	s.mu.Lock()
	for _, o := range s.indexer.List() {
		s.observe(o.(*corev1.Pod))
	}
	s.mu.Unlock()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.changed(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { s.changed(o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				s.gone(p)
			}
		},
	}); err != nil {
		cancel()
		return nil, err
	}
	var out *bufio.Writer
	if timeline != "" {
		f, err := os.Create(timeline)
		if err != nil {
			cancel()
			return nil, err
		}
		out = bufio.NewWriter(f)
		s.header(out)
		go func() {
			<-s.done
			_ = out.Flush()
			_ = f.Close()
		}()
	}
	began := time.Now()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ctx.Err() == nil; n++ {
			if out, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err == nil {
				in := 0
				for _, g := range out.AutoScalingGroups {
					for _, i := range g.Instances {
						if !strings.HasPrefix(string(i.LifecycleState), "Terminating") {
							in++
						}
					}
				}
				s.mu.Lock()
				s.peakInService = max(s.peakInService, in)
				s.mu.Unlock()
			}
			if out != nil && n%2 == 0 {
				s.line(out, time.Since(began))
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return s, nil
}

// header names the timeline's columns: per budget, its pods by state and
// its status's currentHealthy and disruptionsAllowed.
func (s *sampler) header(w io.Writer) {
	fmt.Fprint(w, "seconds")
	for _, b := range s.budgets {
		for _, n := range stateNames {
			fmt.Fprintf(w, "\t%s:%s", b.pdb.Name, n)
		}
		fmt.Fprintf(w, "\t%s:currentHealthy\t%s:disruptionsAllowed", b.pdb.Name, b.pdb.Name)
	}
	fmt.Fprintln(w)
}

func (s *sampler) line(w io.Writer, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "%.1f", at.Seconds())
	for _, b := range s.budgets {
		for _, c := range b.count {
			fmt.Fprintf(w, "\t%d", c)
		}
		cur, allowed := -1, -1
		if o, ok, _ := s.pdbs.GetByKey(b.pdb.Namespace + "/" + b.pdb.Name); ok {
			st := o.(*policyv1.PodDisruptionBudget).Status
			cur, allowed = int(st.CurrentHealthy), int(st.DisruptionsAllowed)
		}
		fmt.Fprintf(w, "\t%d\t%d", cur, allowed)
	}
	fmt.Fprintln(w)
}

func stateOf(p *corev1.Pod) int {
	switch {
	case p.DeletionTimestamp != nil:
		return terminating
	case p.Spec.NodeName == "":
		return unbound
	case conditions.PodReady(p):
		return healthy
	default:
		return starting
	}
}

// observe records a pod's state and moves it between its budgets' counts;
// it returns the budgets it touched. The caller holds mu.
func (s *sampler) observe(p *corev1.Pod) []int {
	was, seen := s.pods[p.UID]
	now := podState{state: stateOf(p), budgets: was.budgets}
	if !seen {
		now.budgets = nil
		for i, b := range s.budgets {
			if disruption.Selects(&b.pdb, p) {
				now.budgets = append(now.budgets, i)
			}
		}
	}
	s.pods[p.UID] = now
	for _, i := range now.budgets {
		if seen {
			s.budgets[i].count[was.state]--
		}
		s.budgets[i].count[now.state]++
	}
	return now.budgets
}

func (s *sampler) changed(p *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.DeletionTimestamp != nil && !disruption.DaemonSetPod(p) {
		// First seen being deleted: when its stop began (the timestamp
		// itself is rewritten by the final deletion).
		if _, seen := s.deleting[p.UID]; !seen {
			s.deleting[p.UID] = time.Now()
		}
	}
	s.check(s.observe(p))
}

func (s *sampler) gone(p *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if began, seen := s.deleting[p.UID]; seen {
		s.stops = append(s.stops, time.Since(began))
		delete(s.deleting, p.UID)
	}
	was, seen := s.pods[p.UID]
	if !seen {
		return
	}
	delete(s.pods, p.UID)
	for _, i := range was.budgets {
		s.budgets[i].count[was.state]--
	}
	s.check(was.budgets)
}

// check compares the touched budgets' healthy pods (Ready, not being
// deleted, as the disruption controller counts them) with their minimum; a
// breach is counted once per time a budget goes below. A pod gone without
// a graceful deletion leaves the count short as well. The caller holds mu.
func (s *sampler) check(touched []int) {
	for _, i := range touched {
		b := s.budgets[i]
		// The workload's own size is what the budget is about: the
		// controller's expected count, as it read it when the run began.
		expected := int(b.pdb.Status.ExpectedPods)
		if expected == 0 {
			expected = b.count[healthy] + b.count[unbound] + b.count[starting]
		}
		least := minimum(b.pdb, expected)
		low := b.count[healthy] < least
		if low && !b.inBreach {
			s.breaches = append(s.breaches, fmt.Sprintf("%s %s/%s: %d healthy, minimum %d; %s", time.Now().Format("15:04:05.000"),
				b.pdb.Namespace, b.pdb.Name, b.count[healthy], least, s.unready(b)))
		}
		b.inBreach = low
	}
}

// unready names a breached budget's pods that are not healthy.
func (s *sampler) unready(b *watched) string {
	var out []string
	for _, o := range s.indexer.List() {
		p := o.(*corev1.Pod)
		if disruption.Selects(&b.pdb, p) && p.DeletionTimestamp == nil && !conditions.PodReady(p) {
			out = append(out, fmt.Sprintf("%s unready (%s on %q)", p.Name, p.Status.Phase, p.Spec.NodeName))
		}
	}
	return strings.Join(out, ", ")
}

func minimum(b policyv1.PodDisruptionBudget, expected int) int {
	if b.Spec.MinAvailable != nil {
		v, _ := intstr.GetScaledValueFromIntOrPercent(b.Spec.MinAvailable, expected, true)
		return v
	}
	if b.Spec.MaxUnavailable != nil {
		v, _ := intstr.GetScaledValueFromIntOrPercent(b.Spec.MaxUnavailable, expected, true)
		return expected - v
	}
	return 0
}

func (s *sampler) finish() (breaches []string, peak int, podStop time.Duration) {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.breaches, s.peakInService, median(s.stops)
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

// percentile is the duration k% of ds are shorter than.
func percentile(ds []time.Duration, k int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(a, b int) bool { return c[a] < c[b] })
	return c[len(c)*k/100]
}
