// Package fake is a stateful, in-memory cloud.Provider for tests of the
// upgrade engine: one cluster of node groups whose instances launch and go at
// once and register as Ready Nodes in a Kubernetes client (client-go's fake
// clientset in unit tests). Every call that changes something can be made to
// fail before it takes effect, or after, as a lost answer or a crash would.
package fake

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Image is an AMI the fake knows.
type Image struct {
	ID, Name, Minor, Release string
}

// Group is the state of one node group.
type Group struct {
	Name, ASG         string
	Min, Max, Desired int
	AZs               []string
	TemplateID        string
	TemplateVersion   int64
	Instances         []*Instance
	Suspended         map[string]bool
	LaunchFailure     string // when set, launches fail with this cause
	// TerminationTimes is the group's history of terminations as the
	// cloud remembers them, newest first (the fake's own go at once).
	TerminationTimes []time.Duration
	launchFailures   []string
	// RecordedVersion is the template version EKS records for the managed
	// group (0: 1, the one it was created with); Strategy its update
	// strategy ("": DEFAULT).
	RecordedVersion int64
	Strategy        string
}

// Instance is one instance of a group.
type Instance struct {
	ID, AZ, ImageID string
	Version         int64
}

// Provider is the fake cloud. Its fields are guarded by mu; tests change
// them through its methods.
type Provider struct {
	mu          sync.Mutex
	kube        kubernetes.Interface
	cluster     string
	version     string
	images      map[string]Image
	recommended map[string]string   // minor -> image ID
	templates   map[string][]string // template ID -> image of each version (index 0 is version 1)
	groups      map[string]*Group
	seq         int
	// Terminations counts TerminateInstance calls that took effect, per instance.
	terminations map[string]int
	// Calls lists every call that changes something, in order, as "Op arg".
	calls []string
	// Before is asked before a change takes effect; an error fails the call
	// with nothing changed. After is asked once it took effect; an error
	// fails the call all the same (a lost answer, a crash after the call).
	Before, After func(op string) error
	// Holding, when set, is asked first with the call's context: a test
	// may hold a call until something outside ends its run.
	Holding func(ctx context.Context, op string) error
	// Quota is what InstanceQuota answers; nil: no quota known.
	Quota *cloud.Quota
	// updates are the EKS updates asked of the fake, by ID: they end at
	// once.
	updates map[string]cloud.ManagedUpdateState
}

var _ cloud.Provider = (*Provider)(nil)

// New returns a fake cloud with one cluster on a Kubernetes minor, whose
// nodes are registered through kube.
func New(kube kubernetes.Interface, cluster, version string) *Provider {
	return &Provider{kube: kube, cluster: cluster, version: version, images: map[string]Image{},
		recommended: map[string]string{}, templates: map[string][]string{}, groups: map[string]*Group{}, terminations: map[string]int{}}
}

// AddImage publishes an AMI; recommended makes it the one
// --kubernetes-version resolves to for its minor.
func (p *Provider) AddImage(img Image, recommended bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.images[img.ID] = img
	if recommended {
		p.recommended[img.Minor] = img.ID
	}
}

// AddGroup creates a group of size instances spread over azs, on image.
func (p *Provider) AddGroup(ctx context.Context, name string, size int, azs []string, image string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	tid := fmt.Sprintf("lt-%04d", len(p.templates)+1)
	p.templates[tid] = []string{image}
	g := &Group{Name: name, ASG: "asg-" + name, Min: size, Max: size, Desired: size, AZs: azs, TemplateID: tid, TemplateVersion: 1, Suspended: map[string]bool{}}
	p.groups[name] = g
	return p.converge(ctx, g)
}

// Group returns a copy of a group's state.
func (p *Provider) Group(name string) Group {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := *p.groups[name]
	g.Instances = nil
	for _, i := range p.groups[name].Instances {
		cp := *i
		g.Instances = append(g.Instances, &cp)
	}
	return g
}

// SetTerminationTimes sets the group's history of terminations as its
// cloud remembers them, newest first.
func (p *Provider) SetTerminationTimes(name string, ts ...time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups[name].TerminationTimes = ts
}

// SetGroup changes a group as someone else would (a person, a pipeline).
func (p *Provider) SetGroup(ctx context.Context, name string, fn func(*Group)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[name]
	fn(g)
	return p.converge(ctx, g)
}

// Terminations returns how many times each instance was terminated.
func (p *Provider) Terminations() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.terminations {
		out[k] = v
	}
	return out
}

// Calls returns the changing calls made so far.
func (p *Provider) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// TemplateVersions returns the image of each version of a template.
func (p *Provider) TemplateVersions(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.templates[id]...)
}

// change runs one changing call through Before and After; callers hold mu.
// The hooks run with mu released, so that they may change the world too.
func (p *Provider) change(ctx context.Context, op string, apply func() error) error {
	p.calls = append(p.calls, op)
	if h := p.Holding; h != nil {
		if err := p.hook(func(op string) error { return h(ctx, op) }, op); err != nil {
			return err
		}
	}
	if err := p.hook(p.Before, op); err != nil {
		return err
	}
	if err := apply(); err != nil {
		return err
	}
	return p.hook(p.After, op)
}

func (p *Provider) hook(h func(string) error, op string) error {
	if h == nil {
		return nil
	}
	p.mu.Unlock()
	defer p.mu.Lock()
	return h(op)
}

// converge launches or removes instances until the group holds Desired,
// as an Auto Scaling group does; callers hold mu.
func (p *Provider) converge(ctx context.Context, g *Group) error {
	for len(g.Instances) < g.Desired {
		if g.LaunchFailure != "" {
			g.launchFailures = append(g.launchFailures, g.LaunchFailure)
			return nil
		}
		perAZ := map[string]int{}
		for _, i := range g.Instances {
			perAZ[i.AZ]++
		}
		az := g.AZs[0]
		for _, a := range g.AZs {
			if perAZ[a] < perAZ[az] {
				az = a
			}
		}
		p.seq++
		inst := &Instance{ID: fmt.Sprintf("i-%06d", p.seq), AZ: az, ImageID: p.templates[g.TemplateID][g.TemplateVersion-1], Version: g.TemplateVersion}
		g.Instances = append(g.Instances, inst)
		if err := p.register(ctx, g, inst); err != nil {
			return err
		}
	}
	for len(g.Instances) > g.Desired {
		if err := p.remove(ctx, g, g.Instances[0].ID); err != nil {
			return err
		}
	}
	return nil
}

// NodeName is the Node an instance registers as.
func NodeName(instanceID string) string { return "node-" + instanceID }

func (p *Provider) register(ctx context.Context, g *Group, i *Instance) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName(i.ID), Labels: map[string]string{
			"topology.kubernetes.io/zone": i.AZ, "eks.amazonaws.com/nodegroup": g.Name, "eks.amazonaws.com/nodegroup-image": i.ImageID}},
		Spec: corev1.NodeSpec{ProviderID: "aws:///" + i.AZ + "/" + i.ID},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v" + p.images[i.ImageID].Minor + ".0"}},
	}
	_, err := p.kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	return err
}

func (p *Provider) remove(ctx context.Context, g *Group, id string) error {
	for k, i := range g.Instances {
		if i.ID == id {
			g.Instances = append(g.Instances[:k], g.Instances[k+1:]...)
			err := p.kube.CoreV1().Nodes().Delete(ctx, NodeName(id), metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				err = nil
			}
			return err
		}
	}
	return nil
}

// Cluster implements cloud.Provider.
func (p *Provider) Cluster(_ context.Context, name string) (cloud.Cluster, error) {
	if name != p.cluster {
		return cloud.Cluster{}, cloud.NotFoundf(nil, "EKS cluster %q", name)
	}
	return cloud.Cluster{Name: name, Version: p.version}, nil
}

// NodeGroup implements cloud.Provider.
func (p *Provider) NodeGroup(ctx context.Context, ref cloud.NodeGroupRef) (cloud.NodeGroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ref.Cluster != p.cluster {
		return cloud.NodeGroup{}, cloud.NotFoundf(nil, "EKS cluster %q", ref.Cluster)
	}
	g, ok := p.groups[ref.Name]
	if !ok {
		return cloud.NodeGroup{}, cloud.NotFoundf(nil, "node group %q in cluster %q", ref.Name, ref.Cluster)
	}
	if err := p.converge(ctx, g); err != nil {
		return cloud.NodeGroup{}, err
	}
	out := cloud.NodeGroup{Cluster: p.cluster, Name: g.Name, Managed: true, ASGName: g.ASG, Min: g.Min, Max: g.Max, Desired: g.Desired,
		AZs: append([]string(nil), g.AZs...), TemplateID: g.TemplateID, TemplateVersion: g.TemplateVersion,
		ImageID: p.templates[g.TemplateID][g.TemplateVersion-1],
		// A managed group on its own template, as eksctl makes them;
		// EKS's record of its version is the one it was created with.
		EKSTemplateID: g.TemplateID, EKSTemplateVersion: max(1, g.RecordedVersion),
		UpdateConfig: cloud.UpdateConfig{MaxUnavailable: 1, Strategy: cmp.Or(g.Strategy, cloud.StrategyDefault)}}
	for _, i := range g.Instances {
		out.Instances = append(out.Instances, cloud.Instance{ID: i.ID, AZ: i.AZ, ImageID: i.ImageID, Lifecycle: "InService",
			TemplateVersion: fmt.Sprint(i.Version), NodeName: NodeName(i.ID)})
	}
	for s, on := range g.Suspended {
		if on {
			out.Suspended = append(out.Suspended, s)
		}
	}
	sort.Strings(out.Suspended)
	return out, nil
}

// ListNodeGroups implements cloud.Provider.
func (p *Provider) ListNodeGroups(_ context.Context, cluster string) ([]cloud.NodeGroupRef, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []cloud.NodeGroupRef
	for n := range p.groups {
		out = append(out, cloud.NodeGroupRef{Cluster: cluster, Name: n})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// ResolveImage implements cloud.Provider.
func (p *Provider) ResolveImage(_ context.Context, q cloud.ImageQuery) (cloud.Image, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := q.ImageID
	switch {
	case q.KubernetesVersion != "":
		id = p.recommended[q.KubernetesVersion]
	case q.ReleaseVersion != "":
		for _, img := range p.images {
			if img.Release == q.ReleaseVersion {
				id = img.ID
			}
		}
	}
	img, ok := p.images[id]
	if !ok {
		return cloud.Image{}, cloud.NotFoundf(nil, "AMI for %+v", q)
	}
	return cloud.Image{ID: img.ID, Name: img.Name, KubeMinor: img.Minor, ReleaseVersion: img.Release}, nil
}

// TemplateImage implements cloud.Provider.
func (p *Provider) TemplateImage(_ context.Context, templateID string, version int64) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vs := p.templates[templateID]
	if version < 1 || int(version) > len(vs) {
		return "", cloud.NotFoundf(nil, "launch template %s version %d", templateID, version)
	}
	return vs[version-1], nil
}

// EnsureTemplateVersion implements cloud.Provider.
func (p *Provider) EnsureTemplateVersion(ctx context.Context, templateID string, from int64, imageID, _ string) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vs := p.templates[templateID]
	if vs[from-1] == imageID {
		return from, nil
	}
	if len(vs) > int(from) && vs[len(vs)-1] == imageID {
		return int64(len(vs)), nil
	}
	var v int64
	err := p.change(ctx, "EnsureTemplateVersion "+imageID, func() error {
		p.templates[templateID] = append(vs, imageID)
		v = int64(len(p.templates[templateID]))
		return nil
	})
	return v, err
}

// UpdateGroup implements cloud.Provider.
func (p *Provider) UpdateGroup(ctx context.Context, ng cloud.NodeGroup, u cloud.GroupUpdate) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[ng.Name]
	var parts []string
	for _, f := range []struct {
		name string
		v    *int
	}{{"min", u.Min}, {"max", u.Max}, {"desired", u.Desired}} {
		if f.v != nil {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, *f.v))
		}
	}
	if u.TemplateVersion != nil {
		parts = append(parts, fmt.Sprintf("version=%d", *u.TemplateVersion))
	}
	return p.change(ctx, "UpdateGroup "+strings.Join(parts, ","), func() error {
		if u.Min != nil {
			g.Min = *u.Min
		}
		if u.Max != nil {
			g.Max = *u.Max
		}
		if u.Desired != nil {
			g.Desired = *u.Desired
		}
		if u.TemplateVersion != nil {
			g.TemplateVersion = *u.TemplateVersion
		}
		if g.Desired < g.Min || g.Desired > g.Max {
			return fmt.Errorf("desired %d outside %d..%d", g.Desired, g.Min, g.Max)
		}
		return p.converge(ctx, g)
	})
}

// TerminateInstance implements cloud.Provider.
func (p *Provider) TerminateInstance(ctx context.Context, id string, decrement bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.groups {
		for _, i := range g.Instances {
			if i.ID != id {
				continue
			}
			return p.change(ctx, fmt.Sprintf("TerminateInstance %s decrement=%v", id, decrement), func() error {
				p.terminations[id]++
				if decrement {
					g.Desired--
				}
				if err := p.remove(ctx, g, id); err != nil {
					return err
				}
				return p.converge(ctx, g)
			})
		}
	}
	return nil // gone already: not an error
}

// SetProcesses implements cloud.Provider.
func (p *Provider) SetProcesses(ctx context.Context, ng cloud.NodeGroup, processes []string, suspend bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[ng.Name]
	return p.change(ctx, fmt.Sprintf("SetProcesses %v suspend=%v", processes, suspend), func() error {
		for _, s := range processes {
			g.Suspended[s] = suspend
		}
		return nil
	})
}

// StartManagedUpdate implements cloud.Provider for the one update the
// fake can play: recording a launch template version every instance
// already runs, under the MINIMAL strategy (which replaces none). It has no
// EKS to replace nodes itself, so anything else is an error.
func (p *Provider) StartManagedUpdate(ctx context.Context, ref cloud.NodeGroupRef, u cloud.ManagedUpdate) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, err := p.group(ref)
	if err != nil {
		return "", err
	}
	if u.TemplateVersion == 0 || cmp.Or(g.Strategy, cloud.StrategyDefault) != cloud.StrategyMinimal {
		return "", fmt.Errorf("the fake cloud cannot update %s itself: it only records a launch template version under the MINIMAL strategy", ref)
	}
	for _, i := range g.Instances {
		if i.Version != u.TemplateVersion {
			return "", fmt.Errorf("the fake cloud cannot update %s itself: instance %s runs version %d, not %d", ref, i.ID, i.Version, u.TemplateVersion)
		}
	}
	return p.startUpdate(ctx, fmt.Sprintf("UpdateNodegroupVersion %s %d", g.Name, u.TemplateVersion), "VersionUpdate", func() { g.RecordedVersion = u.TemplateVersion })
}

// StartManagedConfigUpdate implements cloud.Provider: the fake sets the
// update strategy; it has no use for the counts.
func (p *Provider) StartManagedConfigUpdate(ctx context.Context, ref cloud.NodeGroupRef, c cloud.UpdateConfig) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, err := p.group(ref)
	if err != nil {
		return "", err
	}
	if c.Strategy == "" {
		return "", fmt.Errorf("the fake cloud cannot set the update config of %s but for its strategy", ref)
	}
	return p.startUpdate(ctx, fmt.Sprintf("UpdateNodegroupConfig %s %s", g.Name, c.Strategy), "ConfigUpdate", func() { g.Strategy = c.Strategy })
}

// group is a node group of the fake's; callers hold mu.
func (p *Provider) group(ref cloud.NodeGroupRef) (*Group, error) {
	g, ok := p.groups[ref.Name]
	if !ok {
		return nil, cloud.NotFoundf(nil, "node group %q", ref.Name)
	}
	return g, nil
}

// startUpdate makes an update that has ended already; callers hold mu.
func (p *Provider) startUpdate(ctx context.Context, op, kind string, apply func()) (string, error) {
	p.seq++
	id := fmt.Sprintf("update-%d", p.seq)
	err := p.change(ctx, op, func() error {
		apply()
		if p.updates == nil {
			p.updates = map[string]cloud.ManagedUpdateState{}
		}
		p.updates[id] = cloud.ManagedUpdateState{ID: id, Type: kind, Status: "Successful"}
		return nil
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// ManagedUpdate implements cloud.Provider.
func (p *Provider) ManagedUpdate(_ context.Context, ref cloud.NodeGroupRef, id string) (cloud.ManagedUpdateState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.updates[id]; ok {
		return st, nil
	}
	return cloud.ManagedUpdateState{}, cloud.NotFoundf(nil, "update %s of %s", id, ref)
}

// ManagedUpdateInProgress implements cloud.Provider: the fake's updates
// end at once.
func (p *Provider) ManagedUpdateInProgress(context.Context, cloud.NodeGroupRef) (string, error) {
	return "", nil
}

// InstanceQuota implements cloud.Provider.
func (p *Provider) InstanceQuota(_ context.Context, ng cloud.NodeGroup) (cloud.Quota, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Quota == nil {
		return cloud.Quota{}, cloud.NotFoundf(nil, "instance quota of %s", ng.Name)
	}
	return *p.Quota, nil
}

// LaunchFailures implements cloud.Provider.
func (p *Provider) LaunchFailures(_ context.Context, ng cloud.NodeGroup, _ time.Time) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, f := range p.groups[ng.Name].launchFailures {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// TerminationTimes implements cloud.Provider from the group's TerminationTimes.
func (p *Provider) TerminationTimes(_ context.Context, ng cloud.NodeGroup, limit int) ([]time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.groups[ng.Name].TerminationTimes
	return append([]time.Duration(nil), ts[:min(limit, len(ts))]...), nil
}
