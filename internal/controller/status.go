package controller

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/engine"
)

// maxListedNodes bounds status.nodes: a 1,000-node group must not make a
// large object; counts cover the rest.
const maxListedNodes = 100

// reports is what the engine told a worker, kept for the next status write:
// the status, the metric of refusals and the resource's Events are all
// made from the engine's typed Progress. The drains report concurrently
// with the run.
type reports struct {
	mu      sync.Mutex
	now     func() time.Time
	refused func(budget string) // counts each refusal (nil: not counted)
	// grouped hears of the steps and warnings that concern the whole
	// group (launch template, surge, a failed launch, sizes restored...),
	// not one node (nil: nobody).
	grouped func(p engine.Progress)
	step    string
	message string
	blocked map[string]blocked // by node
	// heard: the engine reported something, which it does only once it
	// holds the group's lock (a run refused the lock says nothing).
	heard bool
}

// running says the engine has reported since the run began.
func (r *reports) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heard
}

type blocked struct {
	by    string
	since time.Time
	last  time.Time
}

func newReports(now func() time.Time) *reports {
	return &reports{now: now, blocked: map[string]blocked{}}
}

var _ engine.Reporter = (*reports)(nil)

// Report implements engine.Reporter.
func (r *reports) Report(p engine.Progress) {
	r.mu.Lock()
	r.heard = true
	r.mu.Unlock()
	switch p.Kind {
	case engine.ProgressStep:
		r.stepped(p)
	case engine.ProgressInfo:
		r.mu.Lock()
		defer r.mu.Unlock()
		r.message = p.Text()
		if r.grouped != nil && p.Warning && p.Node == "" && p.Instance == "" {
			r.grouped(p)
		}
	case engine.ProgressBlocked:
		r.blockedOn(p.Node, p.Blockers)
	}
}

func (r *reports) stepped(p engine.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grouped != nil && p.Node == "" && p.Instance == "" {
		r.grouped(p)
	}
	if p.Step > 0 {
		r.step = fmt.Sprintf("%d/9 %s", p.Step, p.Title)
	} else {
		r.step = p.Title
	}
	r.message = p.Message
}

func (r *reports) blockedOn(node string, bl []drain.Blocker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(bl) == 0 {
		delete(r.blocked, node)
		return
	}
	var by []string
	for _, b := range bl {
		by = append(by, b.String())
		if r.refused != nil {
			r.refused(budgetOf(b))
		}
	}
	now := r.now()
	b, ok := r.blocked[node]
	if !ok {
		b.since = now
	}
	b.by, b.last = strings.Join(by, "; "), now
	r.blocked[node] = b
}

// snapshot copies what was reported, dropping blocks not heard of again
// within fresh: a drain repeats a refusal at each retry, so a silent one
// was let through.
func (r *reports) snapshot(fresh time.Duration) (step, message string, bl map[string]blocked) {
	r.mu.Lock()
	defer r.mu.Unlock()
	bl = map[string]blocked{}
	now := r.now()
	for n, b := range r.blocked {
		if now.Sub(b.last) <= fresh {
			bl[n] = b
		}
	}
	return r.step, r.message, bl
}

// progress is the status's picture of a run at one moment: counts and the
// nodes worth listing, from the group's Nodes, the record and the reports.
type progress struct {
	Total, UpToDate, InFlight, Blocked, Replaced int32
	Nodes                                        []v1alpha1.NodeStatus
	Target                                       *v1alpha1.ResolvedTarget
	Step, Message                                string
	BlockedBy                                    string        // the first block, for the Blocked condition
	Steps                                        []engine.Step // the record's timed steps
}

// observe is pure: the same inputs give the same status.
func observe(rec *engine.Record, nodes []corev1.Node, members *engine.Members, step, message string, bl map[string]blocked) progress {
	p := progress{Step: step, Message: message}
	target := ""
	if rec != nil {
		target = rec.Target.ImageID
		p.Total = int32(rec.OriginalDesired)
		p.Replaced = int32(len(rec.Replaced))
		p.Steps = rec.Steps
		p.Target = &v1alpha1.ResolvedTarget{ImageID: rec.Target.ImageID, ImageName: rec.Target.ImageName, KubernetesVersion: rec.Target.KubeMinor,
			ReleaseVersion: rec.Target.ReleaseVersion, LaunchTemplateVersion: max(rec.Target.TemplateVersion, rec.TemplateVersion)}
	}
	var owned, old, onTarget int32
	for i := range nodes {
		n := &nodes[i]
		if !members.Owns(n) {
			continue
		}
		owned++
		ready := conditions.NodeReady(n)
		switch {
		case target == "":
		case members.Image(n) != target:
			old++
		case ready && !n.Spec.Unschedulable:
			onTarget++
		}
		state := ""
		switch {
		case bl[n.Name].by != "":
			state = "Blocked"
		case n.Spec.Unschedulable:
			state = "Draining"
		case !ready:
			state = "Launching"
		}
		if state == "" {
			continue
		}
		p.InFlight++
		ns := v1alpha1.NodeStatus{Name: n.Name, InstanceID: cloud.InstanceIDOf(n.Spec.ProviderID), Zone: n.Labels[corev1.LabelTopologyZone], State: state}
		if b, ok := bl[n.Name]; ok {
			p.Blocked++
			ns.BlockedBy = b.by
			ns.Since = &metav1.Time{Time: b.since}
		}
		p.Nodes = append(p.Nodes, ns)
	}
	if p.Total == 0 {
		p.Total = owned
	}
	// Done of the final size: a surge's extra new nodes are not progress
	// until as many old ones are gone.
	p.UpToDate = max(min(onTarget, p.Total-old), 0)
	// Blocked nodes first, then by name: the list is cut, and what stands
	// in the way matters most.
	slices.SortFunc(p.Nodes, func(a, b v1alpha1.NodeStatus) int {
		if (a.BlockedBy != "") != (b.BlockedBy != "") {
			if a.BlockedBy != "" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(p.Nodes) > 0 && p.Nodes[0].BlockedBy != "" {
		p.BlockedBy = fmt.Sprintf("node %s: %s", p.Nodes[0].Name, p.Nodes[0].BlockedBy)
	}
	if len(p.Nodes) > maxListedNodes {
		p.Nodes = p.Nodes[:maxListedNodes]
	}
	return p
}

// budgetOf names what refused an eviction: its budget as namespace/name,
// or the API server's reason when no budget did (a webhook).
func budgetOf(b drain.Blocker) string {
	if len(b.PDBs) == 0 {
		return b.Reason
	}
	name, _, _ := strings.Cut(b.PDBs[0], " ")
	return name
}
