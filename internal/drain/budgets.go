package drain

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	policylisters "k8s.io/client-go/listers/policy/v1"

	"github.com/noderoll/noderoll/internal/disruption"
)

// Broadcast tells any number of waiters that something changed: each
// Changed channel is closed by the next Notify.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// newBroadcast returns a Broadcast.
func newBroadcast() *Broadcast { return &Broadcast{ch: make(chan struct{})} }

// Notify wakes everyone waiting on a channel Changed returned.
func (b *Broadcast) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// Changed returns a channel closed at the next Notify; nil (never ready)
// on a nil Broadcast.
func (b *Broadcast) Changed() <-chan struct{} {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// Budgets tracks the disruption headroom of PodDisruptionBudgets across all
// drains of a run, from the budgets' status as an informer sees it, as
// cluster-autoscaler does: an eviction a budget is known to refuse is not
// sent (the API server is asked again only every RetryDelay, in case the
// cache lags), and drains waiting on a budget wake when it changes.
type Budgets struct {
	lister  policylisters.PodDisruptionBudgetLister
	Changed *Broadcast // notified on every budget change

	mu    sync.Mutex
	spent map[string]spent // evictions since the budget's status was last seen to change
	// queue holds, per budget, the pods waiting for one of its disruptions
	// and the turn of the drain they wait in. Drains take a budget's
	// disruptions in the order they began: shared out among many nodes,
	// they would finish every node late; in order, the first nodes finish
	// first and their slots go to the next ones.
	queue     map[string]map[string]int64
	turns     int64
	selectors disruption.Selectors
}

type spent struct {
	rv string
	n  int
}

// NewBudgets returns a tracker reading budgets from lister; the caller
// calls Changed.Notify on every change the informer delivers.
func NewBudgets(lister policylisters.PodDisruptionBudgetLister) *Budgets {
	return &Budgets{lister: lister, Changed: newBroadcast(), spent: map[string]spent{}, queue: map[string]map[string]int64{}}
}

// covering lists the budgets selecting the pod.
func (b *Budgets) covering(p *corev1.Pod) []*policyv1.PodDisruptionBudget {
	if b == nil {
		return nil
	}
	list, err := b.lister.PodDisruptionBudgets(p.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	return b.selectors.Covering(list, p)
}

// headroom is what the budget allows now, less the evictions this process
// made since its status last changed.
func (b *Budgets) headroom(pdb *policyv1.PodDisruptionBudget) int {
	key := pdb.Namespace + "/" + pdb.Name
	s := b.spent[key]
	if s.rv != pdb.ResourceVersion {
		s = spent{rv: pdb.ResourceVersion}
		b.spent[key] = s
	}
	return int(pdb.Status.DisruptionsAllowed) - s.n
}

// Reservation is the disruptions Take counted against a pod's budgets,
// each at the budget's status it was counted against.
type Reservation map[string]string // budget key -> resourceVersion

// Turn is a drain's place in the budgets' queues, given as it begins;
// Done gives it up.
func (b *Budgets) Turn() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.turns++
	return b.turns
}

// Done takes every pod of the drain whose turn it is out of the queues,
// and wakes the drains that waited behind them.
func (b *Budgets) Done(turn int64) {
	if b == nil {
		return
	}
	defer b.Changed.Notify()
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, q := range b.queue {
		for pod, t := range q {
			if t == turn {
				delete(q, pod)
			}
		}
		if len(q) == 0 {
			delete(b.queue, key)
		}
	}
}

// Want queues a pod the drain whose turn it is has still to evict, for
// every budget selecting it: drains that began later leave it the
// disruptions it will ask for a moment later, while it evicts its other
// pods one after another.
func (b *Budgets) Want(p *corev1.Pod, turn int64) {
	if b == nil {
		return
	}
	pdbs := b.covering(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pdb := range pdbs {
		b.enqueue(pdb.Namespace+"/"+pdb.Name, p, turn)
	}
}

// Forget takes a pod out of the queues: evicted, or gone.
func (b *Budgets) Forget(p *corev1.Pod) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forget(podKey(p))
}

func (b *Budgets) forget(pod string) {
	for key, q := range b.queue {
		delete(q, pod)
		if len(q) == 0 {
			delete(b.queue, key)
		}
	}
}

// ahead counts the pods waiting for the budget in drains that began before
// the one whose turn it is.
func (b *Budgets) ahead(key string, turn int64) int {
	n := 0
	for _, t := range b.queue[key] {
		if t < turn {
			n++
		}
	}
	return n
}

// Take reserves one disruption of every budget that selects the pod, or,
// when one of them has none left by its status (or none that a drain which
// began earlier is not waiting for), reserves nothing, queues the pod for
// those budgets in the drain's turn and names them (described as
// Blocker.PDBs are). Drains evict many pods at once: checking and counting
// in one step keeps them from all seeing the same last disruption free.
func (b *Budgets) Take(p *corev1.Pod, turn int64) (r Reservation, refusing []string) {
	if b == nil {
		return nil, nil
	}
	pdbs := b.covering(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pdb := range pdbs {
		key := pdb.Namespace + "/" + pdb.Name
		room, ahead := b.headroom(pdb), b.ahead(key, turn)
		if room-ahead <= 0 {
			what := describe(*pdb)
			if room > 0 {
				// The budget allows disruptions, but drains that began
				// earlier wait for them: say so, not just its count.
				what = strings.TrimSuffix(what, ")") + fmt.Sprintf(", all awaited by %d pods of nodes whose drains began earlier)", ahead)
			}
			refusing = append(refusing, what)
			b.enqueue(key, p, turn)
		}
	}
	if len(refusing) > 0 {
		return nil, refusing
	}
	b.forget(podKey(p))
	r = Reservation{}
	for _, pdb := range pdbs {
		key := pdb.Namespace + "/" + pdb.Name
		s := b.spent[key]
		s.n++
		b.spent[key] = s
		r[key] = s.rv
	}
	return r, nil
}

func (b *Budgets) enqueue(key string, p *corev1.Pod, turn int64) {
	if b.queue[key] == nil {
		b.queue[key] = map[string]int64{}
	}
	b.queue[key][podKey(p)] = turn
}

// Return gives back a reservation whose eviction did not happen. A budget
// whose status changed since has had its count started afresh from the
// status, which knows nothing of the reservation.
func (b *Budgets) Return(r Reservation) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, rv := range r {
		if s := b.spent[key]; s.rv == rv && s.n > 0 {
			s.n--
			b.spent[key] = s
		}
	}
}

func (b *Budgets) changed() <-chan struct{} {
	if b == nil {
		return nil
	}
	return b.Changed.Changed()
}

// NodeBroadcast is a Broadcast per node: a drain waits on its own node's.
type NodeBroadcast struct {
	mu    sync.Mutex
	nodes map[string]*Broadcast
}

// NewNodeBroadcast returns a NodeBroadcast.
func NewNodeBroadcast() *NodeBroadcast { return &NodeBroadcast{nodes: map[string]*Broadcast{}} }

// Notify wakes the waiters of one node.
func (n *NodeBroadcast) Notify(node string) {
	n.mu.Lock()
	b := n.nodes[node]
	n.mu.Unlock()
	if b != nil {
		b.Notify()
	}
}

// Changed returns a channel closed at the next Notify of the node; nil on
// a nil NodeBroadcast.
func (n *NodeBroadcast) Changed(node string) <-chan struct{} {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	b := n.nodes[node]
	if b == nil {
		b = newBroadcast()
		n.nodes[node] = b
	}
	n.mu.Unlock()
	return b.Changed()
}
