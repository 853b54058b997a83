package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/preflight"
)

// PreflightReport is what an upgrade would do and what stands in its way,
// judged without changing anything.
type PreflightReport struct {
	Nodegroup      string              `json:"nodegroup"`
	Strategy       string              `json:"strategy"`
	Target         Target              `json:"target"`
	UpToDate       bool                `json:"upToDate"`
	Resuming       bool                `json:"resuming"`
	Instances      int                 `json:"instances"`
	ToReplace      int                 `json:"toReplace"`
	MaxSurge       int                 `json:"maxSurge"`
	MaxUnavailable int                 `json:"maxUnavailable"`
	Findings       []preflight.Finding `json:"findings"`
	// ResumeNote says, on a resume, that the request resolves to another
	// AMI now than the recorded one the run goes on to.
	ResumeNote string `json:"resumeNote,omitempty"`
	// Blocking counts the findings that would stop a real run (those of
	// --ignore-preflight's checks left out).
	Blocking int `json:"blocking"`
}

// Preflight judges an upgrade of the group as a real run would before it
// changes anything, and says what the run would do. It changes nothing.
func (e *Engine) Preflight(ctx context.Context, req Request) (*PreflightReport, error) {
	p, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	r, err := e.judge(ctx, p)
	if err == nil && r.ResumeNote != "" {
		e.report.Info(r.ResumeNote)
	}
	return r, err
}

// judge takes the record prepare read (without the lock: nothing is
// changed) to see what a run would resume, gathers the facts and checks
// them.
func (e *Engine) judge(ctx context.Context, p *prepared) (*PreflightReport, error) {
	rec := p.record
	var err error
	target := p.target
	r := &PreflightReport{Nodegroup: p.req.Group.String(), Strategy: e.opts.Strategy, Instances: len(p.group.Instances),
		MaxSurge: p.surge, MaxUnavailable: p.unavailable, Findings: []preflight.Finding{}}
	if rec.Active() {
		if target, r.ResumeNote, err = e.resumeTarget(p.req, rec, target); err != nil {
			return nil, err
		}
		r.Resuming, r.Strategy = true, strategyOf(rec)
	}
	r.Target = target
	for _, i := range p.group.Instances {
		if i.ImageID != target.ImageID && !i.Terminating() {
			r.ToReplace++
		}
	}
	if !r.Resuming && upToDate(p.group, target) {
		r.UpToDate = true
		return r, nil
	}
	// A resumed run launches only what its surge still lacks: the group
	// is surged already, in part or whole.
	toLaunch := p.surge
	if r.Resuming {
		toLaunch = max(0, rec.OriginalDesired+rec.Surge-p.group.Desired)
	}
	facts, err := e.facts(ctx, p.group, p.controlPlane, target, toLaunch)
	if err != nil {
		return nil, err
	}
	r.Findings = preflight.Check(facts)
	r.Blocking = len(preflight.Blocked(r.Findings, e.opts.IgnorePreflight))
	return r, nil
}

// facts gathers what the checks judge, from the cluster as it is.
func (e *Engine) facts(ctx context.Context, g cloud.NodeGroup, cp string, t Target, surge int) (preflight.Facts, error) {
	f := preflight.Facts{Group: g.Cluster + "/" + g.Name, Terms: e.opts.Terms, AZs: g.AZs, Desired: g.Desired, Surge: surge,
		ControlPlane: cp, Target: t.KubeMinor, Kubelets: map[string]string{}, VolumeZones: map[string]string{}}
	if g.Managed && !e.opts.Managed {
		f.Template = &preflight.ManagedTemplate{Launched: g.TemplateID, Named: g.EKSTemplateID, RecordedVersion: g.EKSTemplateVersion}
	}
	if e.opts.Drain.Force {
		f.Force, f.ForceDenied = true, e.mayNotDeletePods(ctx)
	}
	mine := map[string]bool{}
	for _, i := range g.Instances {
		if i.NodeName != "" {
			mine[i.NodeName] = true
		}
	}
	nodes, err := e.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return f, fmt.Errorf("preflight: listing nodes: %w", err)
	}
	for _, n := range nodes.Items {
		if mine[n.Name] {
			f.Kubelets[n.Name] = n.Status.NodeInfo.KubeletVersion
		}
	}
	claims := false
	if err := eachPod(ctx, e.kube, func(p *corev1.Pod) {
		if !mine[p.Spec.NodeName] {
			return
		}
		p = preflightPod(p)
		f.Pods = append(f.Pods, p)
		for _, v := range p.Spec.Volumes {
			claims = claims || v.PersistentVolumeClaim != nil
		}
	}); err != nil {
		return f, fmt.Errorf("preflight: listing pods: %w", err)
	}
	pdbs, err := e.kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return f, fmt.Errorf("preflight: listing PodDisruptionBudgets: %w", err)
	}
	for i := range pdbs.Items {
		f.Budgets = append(f.Budgets, &pdbs.Items[i])
	}
	if claims {
		if err := e.volumeZones(ctx, f.VolumeZones); err != nil {
			return f, err
		}
	}
	if surge > 0 {
		q, err := e.cloud.InstanceQuota(ctx, g)
		switch {
		case cloud.IsNotFound(err):
			// A kind of instance noderoll knows no quota for: not checked.
		case err != nil:
			f.QuotaUnread = err.Error()
		default:
			f.Quota = &preflight.Quota{Code: q.Code, Name: q.Name, Limit: q.Limit, Used: q.Used, PerInstance: q.PerInstance}
		}
	}
	ca, err := findAutoscaler(ctx, e.kube, e.opts.ClusterAutoscaler, e.opts.Terms)
	if err != nil {
		return f, err
	}
	switch {
	case e.opts.ClusterAutoscaler == "none":
		f.Autoscaler = "none"
	case ca != nil:
		f.Autoscaler = ca.Namespace + "/" + ca.Name
	}
	return f, nil
}

// zoneKeys are the node labels a volume's node affinity pins a zone with.
var zoneKeys = []string{"topology.kubernetes.io/zone", "topology.ebs.csi.aws.com/zone", "failure-domain.beta.kubernetes.io/zone"}

// volumeZones fills in the zone of every bound claim whose volume is pinned
// to exactly one.
func (e *Engine) volumeZones(ctx context.Context, into map[string]string) error {
	pvs, err := e.kube.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("preflight: listing PersistentVolumes: %w", err)
	}
	for _, pv := range pvs.Items {
		ref := pv.Spec.ClaimRef
		if ref == nil {
			continue
		}
		if zone := zoneOf(&pv); zone != "" {
			into[ref.Namespace+"/"+ref.Name] = zone
		}
	}
	return nil
}

func zoneOf(pv *corev1.PersistentVolume) string {
	if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
		for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
			for _, m := range term.MatchExpressions {
				for _, k := range zoneKeys {
					if m.Key == k && m.Operator == corev1.NodeSelectorOpIn && len(m.Values) == 1 {
						return m.Values[0]
					}
				}
			}
		}
	}
	for _, k := range zoneKeys {
		if z := pv.Labels[k]; z != "" {
			return z
		}
	}
	return ""
}

// mayNotDeletePods asks the API server whether this identity may delete
// pods in every namespace (what a forced drain does), and says why not; ""
// when it may, or when the answer could not be had (the drain then finds
// out itself).
func (e *Engine) mayNotDeletePods(ctx context.Context) string {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "delete", Resource: "pods"}}}
	got, err := e.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		e.log.Warn("could not ask whether this identity may delete pods (needed by force)", "err", err)
		return ""
	}
	if got.Status.Allowed {
		return ""
	}
	if got.Status.Reason != "" {
		return got.Status.Reason
	}
	return "the API server's access review does not allow it"
}

// preflightPod is a copy of the pod with only what the checks read: its
// name, labels, annotations, owners and deletion, its node, phase and
// volumes (their kind and claim). A group of thousands of pods is held
// while the checks run, 3 at once in a controller.
func preflightPod(p *corev1.Pod) *corev1.Pod {
	o := &corev1.Pod{}
	o.Namespace, o.Name, o.UID = p.Namespace, p.Name, p.UID
	o.Labels, o.Annotations = maps.Clone(p.Labels), maps.Clone(p.Annotations)
	o.OwnerReferences = slices.Clone(p.OwnerReferences)
	o.DeletionTimestamp = p.DeletionTimestamp.DeepCopy()
	o.Spec.NodeName = p.Spec.NodeName
	o.Status.Phase = p.Status.Phase
	for _, v := range p.Spec.Volumes {
		c := corev1.Volume{Name: v.Name}
		switch {
		case v.EmptyDir != nil:
			c.EmptyDir = &corev1.EmptyDirVolumeSource{}
		case v.HostPath != nil:
			c.HostPath = &corev1.HostPathVolumeSource{Path: v.HostPath.Path}
		case v.PersistentVolumeClaim != nil:
			c.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.PersistentVolumeClaim.ClaimName}
		}
		o.Spec.Volumes = append(o.Spec.Volumes, c)
	}
	return o
}
