package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// sampler watches a run from outside the engine: PodDisruptionBudget
// breaches (healthy pods below a budget's minimum, counted from the pods
// themselves on every pod change), the instances in service (every 500ms),
// and pod stop times.
type sampler struct {
	mu            sync.Mutex
	budgets       []policyv1.PodDisruptionBudget
	breaches      []string
	inBreach      map[string]bool
	peakInService int
	stops         []time.Duration
	deleting      map[string]time.Time
	stop          context.CancelFunc
	done          chan struct{}
	pods          cache.Indexer
}

func startSampler(ctx context.Context, kube kubernetes.Interface, asg *autoscaling.Client) (*sampler, error) {
	list, err := kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{budgets: list.Items, inBreach: map[string]bool{}, deleting: map[string]time.Time{}, stop: cancel, done: make(chan struct{})}
	factory := informers.NewSharedInformerFactory(kube, 0)
	inf := factory.Core().V1().Pods().Informer()
	s.pods = inf.GetIndexer()
	check := func() { s.check() }
	// Handlers are added once the cache holds every pod: the first
	// notifications of a cache still filling would count budgets short.
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod informer did not sync")
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { check() },
		UpdateFunc: func(_, o any) {
			if p, ok := o.(*corev1.Pod); ok && p.DeletionTimestamp != nil {
				// First seen being deleted: when its stop began (the
				// timestamp itself is rewritten by the final deletion).
				s.mu.Lock()
				if _, seen := s.deleting[string(p.UID)]; !seen {
					s.deleting[string(p.UID)] = time.Now()
				}
				s.mu.Unlock()
			}
			check()
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok && !isDaemon(p) {
				s.mu.Lock()
				if began, seen := s.deleting[string(p.UID)]; seen {
					s.stops = append(s.stops, time.Since(began))
					delete(s.deleting, string(p.UID))
				}
				s.mu.Unlock()
			}
			check()
		},
	}); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			if out, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err == nil {
				n := 0
				for _, g := range out.AutoScalingGroups {
					for _, i := range g.Instances {
						if !strings.HasPrefix(string(i.LifecycleState), "Terminating") {
							n++
						}
					}
				}
				s.mu.Lock()
				s.peakInService = max(s.peakInService, n)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return s, nil
}

func isDaemon(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

// check counts each budget's healthy pods (Ready, not being deleted, as the
// disruption controller counts) against its minimum; a breach is counted
// once per time a budget goes below.
func (s *sampler) check() {
	objs := s.pods.List()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.budgets {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil {
			continue
		}
		healthy, expected := 0, 0
		var unready []string
		for _, o := range objs {
			p := o.(*corev1.Pod)
			if p.Namespace != b.Namespace || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			if p.DeletionTimestamp == nil {
				expected++
			}
			switch {
			case p.DeletionTimestamp == nil && podReady(p):
				healthy++
			case p.DeletionTimestamp == nil:
				unready = append(unready, fmt.Sprintf("%s unready (%s on %q)", p.Name, p.Status.Phase, p.Spec.NodeName))
			}
		}
		key := b.Namespace + "/" + b.Name
		// The workload's own size is what the budget is about: the
		// controller's expected count, as it read it when the run began.
		if b.Status.ExpectedPods > 0 {
			expected = int(b.Status.ExpectedPods)
		}
		low := healthy < minimum(b, expected)
		if low && !s.inBreach[key] {
			s.breaches = append(s.breaches, fmt.Sprintf("%s %s: %d healthy, minimum %d; %s", time.Now().Format("15:04:05.000"), key, healthy, minimum(b, expected), strings.Join(unready, ", ")))
		}
		s.inBreach[key] = low
	}
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

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (s *sampler) finish() (breaches []string, peak int, podStop time.Duration) {
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.breaches, s.peakInService, median(s.stops)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(a, b int) bool { return c[a] < c[b] })
	return c[len(c)/2]
}
