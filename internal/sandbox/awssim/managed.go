package awssim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// NodeOps is what EKS does to a managed group's nodes during an update,
// on the cluster. The sandbox's registrar implements it; without it an
// update fails at once.
type NodeOps interface {
	NodeReady(ctx context.Context, name string) (bool, error)
	// TaintNode applies eks.amazonaws.com/nodegroup=unschedulable:NoSchedule.
	TaintNode(ctx context.Context, name string) error
	// DrainNode evicts the node's pods (DaemonSet and mirror pods aside)
	// within their budgets, then cordons it; an error when a budget still
	// refuses at timeout.
	DrainNode(ctx context.Context, name string, timeout time.Duration) error
}

// ManagedTimings are EKS's own waits in a node group update: after each
// cordon, for a pod's eviction, for new nodes.
type ManagedTimings struct {
	PostCordon, EvictionTimeout, NodeReady time.Duration
	// ConfigUpdate is how long an UpdateNodegroupConfig takes to apply.
	ConfigUpdate time.Duration
}

// DefaultManagedTimings are EKS's (60 s after a cordon, 15 minutes of
// eviction retries before PodEvictionFailure).
var DefaultManagedTimings = ManagedTimings{PostCordon: 60 * time.Second, EvictionTimeout: 15 * time.Minute, NodeReady: 15 * time.Minute, ConfigUpdate: 10 * time.Second}

// Update is an EKS update of a node group, as DescribeUpdate shows it.
type Update struct {
	ID, Cluster, Nodegroup, Type, Status string
	Params                               []UpdateParam
	Errors                               []UpdateError
	Created                              time.Time
	token                                string
	force                                bool
	surge                                int
	unavailable                          int // nodes drained at once
}

// UpdateParam and UpdateError are an update's parameters and errors.
type (
	UpdateParam struct{ Type, Value string }
	UpdateError struct {
		Code, Message string
		ResourceIDs   []string
	}
)

// launchTemplateSpec names a launch template in EKS's requests.
type launchTemplateSpec struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

type nodegroupVersionRequest struct {
	Version            string              `json:"version"`
	ReleaseVersion     string              `json:"releaseVersion"`
	LaunchTemplate     *launchTemplateSpec `json:"launchTemplate"`
	Force              bool                `json:"force"`
	ClientRequestToken string              `json:"clientRequestToken"`
}

type nodegroupConfigRequest struct {
	UpdateConfig *struct {
		MaxUnavailable           *int    `json:"maxUnavailable"`
		MaxUnavailablePercentage *int    `json:"maxUnavailablePercentage"`
		UpdateStrategy           *string `json:"updateStrategy"`
	} `json:"updateConfig"`
	Labels             json.RawMessage `json:"labels"`
	Taints             json.RawMessage `json:"taints"`
	ScalingConfig      json.RawMessage `json:"scalingConfig"`
	NodeRepairConfig   json.RawMessage `json:"nodeRepairConfig"`
	ClientRequestToken string          `json:"clientRequestToken"`
}

// SetManagedTimings sets the waits of managed node group updates (the
// sandbox scales them down with its other delays).
func (a *Account) SetManagedTimings(t ManagedTimings) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.managed = t
}

// serveNodegroupUpdate answers UpdateNodegroupVersion,
// UpdateNodegroupConfig, DescribeUpdate and ListUpdates (EKS API
// reference); callers logged the call.
func (s *Server) serveNodegroupUpdate(w http.ResponseWriter, r *http.Request, action string, parts []string) {
	a := s.acct
	var out any
	var apiErr *APIError
	switch action {
	case "UpdateNodegroupVersion":
		out, apiErr = startFromBody(a, r, func(req nodegroupVersionRequest) (*Update, *APIError) { return a.startUpdate(parts[1], parts[3], req) })
	case "UpdateNodegroupConfig":
		out, apiErr = startFromBody(a, r, func(req nodegroupConfigRequest) (*Update, *APIError) {
			return a.startConfigUpdate(parts[1], parts[3], req)
		})
	case "DescribeUpdate":
		a.mu.Lock()
		u := a.updates[parts[3]]
		if u == nil || u.Cluster != parts[1] || (r.URL.Query().Get("nodegroupName") != "" && u.Nodegroup != r.URL.Query().Get("nodegroupName")) {
			apiErr = eksNotFound("No update found for ID: %s.", parts[3])
		} else {
			out = map[string]any{"update": u.view()}
		}
		a.mu.Unlock()
	case "ListUpdates":
		a.mu.Lock()
		ids := []string{}
		for _, u := range a.updates {
			if u.Cluster == parts[1] && (r.URL.Query().Get("nodegroupName") == "" || u.Nodegroup == r.URL.Query().Get("nodegroupName")) {
				ids = append(ids, u.ID)
			}
		}
		a.mu.Unlock()
		sort.Strings(ids)
		out = map[string]any{"updateIds": ids}
	}
	if apiErr != nil {
		writeJSONError(w, apiErr, eksContentType)
		return
	}
	writeJSON(w, http.StatusOK, eksContentType, out)
}

// startFromBody decodes an update request's JSON body, starts the update
// and answers it as EKS does: {"update": ...}.
func startFromBody[R any](a *Account, r *http.Request, start func(R) (*Update, *APIError)) (any, *APIError) {
	var req R
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, &APIError{Code: "InvalidParameterException", Message: "The request body is not valid JSON: " + err.Error(), Status: 400}
	}
	u, apiErr := start(req)
	if apiErr != nil {
		return nil, apiErr
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return map[string]any{"update": u.view()}, nil
}

// view is an update as the API shows it; callers hold mu.
func (u *Update) view() map[string]any {
	params := []map[string]string{}
	for _, p := range u.Params {
		params = append(params, map[string]string{"type": p.Type, "value": p.Value})
	}
	errs := []map[string]any{}
	for _, e := range u.Errors {
		errs = append(errs, map[string]any{"errorCode": e.Code, "errorMessage": e.Message, "resourceIds": e.ResourceIDs})
	}
	return map[string]any{"id": u.ID, "status": u.Status, "type": u.Type, "params": params, "errors": errs, "createdAt": u.Created.Unix()}
}

// byToken is the group's update a request token started, nil for none;
// callers hold mu.
func (a *Account) byToken(cluster, nodegroup, token string) *Update {
	if token == "" {
		return nil
	}
	for _, u := range a.updates {
		if u.token == token && u.Cluster == cluster && u.Nodegroup == nodegroup {
			return u
		}
	}
	return nil
}

// updating reports whether a node group has an update in progress; callers
// hold mu.
func (a *Account) updating(cluster, nodegroup string) *Update {
	for _, u := range a.updates {
		if u.Cluster == cluster && u.Nodegroup == nodegroup && u.Status == "InProgress" {
			return u
		}
	}
	return nil
}

func invalidParam(format string, args ...any) *APIError {
	return &APIError{Code: "InvalidParameterException", Message: fmt.Sprintf(format, args...), Status: 400}
}

// startUpdate validates an UpdateNodegroupVersion request as EKS does and,
// when it stands, does the update's setup (a launch template version with
// the target AMI unless the request names one, the group pointed at it,
// surged by one instance a zone) and sets it going.
func (a *Account) startUpdate(cluster, name string, req nodegroupVersionRequest) (*Update, *APIError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.clusters[cluster]
	if !ok {
		return nil, eksNotFound("No cluster found for name: %s.", cluster)
	}
	ng, ok := a.nodegroups[cluster+"/"+name]
	if !ok {
		return nil, eksNotFound("No node group found for name: %s.", name)
	}
	if u := a.byToken(cluster, name, req.ClientRequestToken); u != nil {
		return u, nil // the same request again: the same update
	}
	if u := a.updating(cluster, name); u != nil {
		return nil, &APIError{Code: "ResourceInUseException", Message: fmt.Sprintf("Nodegroup %s is currently being updated (update %s).", name, u.ID), Status: 409}
	}
	g := a.groups[ng.Group]
	lt := a.findTemplate(ng.TemplateID, "")
	if g == nil || lt == nil {
		return nil, &APIError{Code: "ServerException", Message: "The node group has no Auto Scaling group or launch template.", Status: 500}
	}
	cur, _ := lt.resolve(g.Template.Version)
	target, apiErr := a.updateTarget(c, ng, lt, cur, req)
	if apiErr != nil {
		return nil, apiErr
	}
	now := a.clock.Now()
	// EKS surges by a node a zone (the seed's 3 to 6), or by the nodes it
	// replaces at once when that is larger; with the MINIMAL strategy not
	// at all: only the nodes off the target are replaced, maxUnavailable
	// at a time (none when every node runs it already).
	unavailable := ng.unavailable(g.Desired)
	surge := max(len(g.AZs), unavailable)
	if ng.strategy() == "MINIMAL" {
		surge = 0
	}
	u := &Update{ID: a.uuid(), Cluster: cluster, Nodegroup: name, Type: "VersionUpdate", Status: "InProgress", Created: now,
		token: req.ClientRequestToken, force: req.Force, surge: surge, unavailable: unavailable}
	if img := a.images[target.Data.ImageID]; img != nil {
		u.Params = append(u.Params, UpdateParam{"Version", img.KubeMinor}, UpdateParam{"ReleaseVersion", img.ReleaseVersion})
	}
	u.Params = append(u.Params, UpdateParam{"LaunchTemplateVersion", fmt.Sprint(target.Number)}, UpdateParam{"Force", fmt.Sprint(req.Force)})
	if a.updates == nil {
		a.updates = map[string]*Update{}
	}
	a.updates[u.ID] = u
	g.Template.Version = fmt.Sprint(target.Number)
	ng.TemplateVersion = target.Number
	g.Max += surge
	g.Desired += surge
	a.poke()
	ops, ctx := a.ops, a.runCtx
	if ops == nil || ctx == nil {
		u.Status = "Failed"
		u.Errors = append(u.Errors, UpdateError{Code: "InternalFailure", Message: "The sandbox's endpoint has no cluster to update nodes on."})
		return u, nil
	}
	go a.runUpdate(ctx, u, ops, ng.Group, target.Number, target.Data.ImageID)
	return u, nil
}

// updateTarget is the launch template version an update moves the group
// to: the user's (a version of the group's own template), or a new one
// EKS writes with the AMI of the Kubernetes and release versions asked.
func (a *Account) updateTarget(c *Cluster, ng *Nodegroup, lt *LaunchTemplate, cur *TemplateVersion, req nodegroupVersionRequest) (*TemplateVersion, *APIError) {
	if req.LaunchTemplate != nil && ng.EKSTemplate {
		return nil, invalidParam("Nodegroup %s was not created with a launch template of yours, so it cannot be updated to one: give a Kubernetes version or a release version.", ng.Name)
	}
	if req.LaunchTemplate != nil {
		if req.LaunchTemplate.ID != "" && req.LaunchTemplate.Name != "" {
			// API_LaunchTemplateSpecification: one of the two, not both.
			return nil, invalidParam("Either provide launch template ID or launch template name in the request.")
		}
		if req.LaunchTemplate.ID != "" && req.LaunchTemplate.ID != lt.ID || req.LaunchTemplate.Name != "" && req.LaunchTemplate.Name != lt.Name {
			return nil, invalidParam("The launch template of a node group cannot be changed: it uses %s (%s).", lt.ID, lt.Name)
		}
		v, ok := lt.resolve(req.LaunchTemplate.Version)
		if !ok {
			return nil, invalidParam("Launch template version %q of %s does not exist.", req.LaunchTemplate.Version, lt.ID)
		}
		if (req.Version != "" || req.ReleaseVersion != "") && v.Data.ImageID != "" && ng.AmiType == "CUSTOM" {
			return nil, invalidParam("You cannot specify a Kubernetes version or a release version for a node group whose launch template specifies a custom AMI.")
		}
		return v, nil
	}
	if ng.AmiType == "CUSTOM" {
		return nil, invalidParam("The node group's launch template specifies a custom AMI: update it with a new launch template version.")
	}
	like := a.images[cur.Data.ImageID]
	minor := req.Version
	if minor == "" {
		minor = c.Version
	}
	if like == nil {
		return nil, &APIError{Code: "ServerException", Message: "The node group's AMI is unknown.", Status: 500}
	}
	if versionNewer(minor, c.Version) {
		return nil, invalidParam("Requested Nodegroup Kubernetes version %s is newer than the cluster's version %s.", minor, c.Version)
	}
	img := a.eksImage(like, minor, req.ReleaseVersion)
	if img == nil {
		return nil, invalidParam("No AMI of release version %q for Kubernetes %s.", req.ReleaseVersion, minor)
	}
	data := cur.Data
	data.ImageID = img.ID
	target := &TemplateVersion{Number: lt.latest().Number + 1, Description: "EKS managed node group update", Created: a.clock.Now(), Data: data}
	lt.Versions = append(lt.Versions, target)
	return target, nil
}

// startConfigUpdate validates an UpdateNodegroupConfig request as EKS does
// (NodegroupUpdateConfig: one of maxUnavailable, 1 to 100, and
// maxUnavailablePercentage, 1 to 100) and applies it after
// ManagedTimings.ConfigUpdate, as an update of type ConfigUpdate. The
// sandbox changes only updateConfig; other fields are refused by name.
func (a *Account) startConfigUpdate(cluster, name string, req nodegroupConfigRequest) (*Update, *APIError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.clusters[cluster]; !ok {
		return nil, eksNotFound("No cluster found for name: %s.", cluster)
	}
	ng, ok := a.nodegroups[cluster+"/"+name]
	if !ok {
		return nil, eksNotFound("No node group found for name: %s.", name)
	}
	if u := a.byToken(cluster, name, req.ClientRequestToken); u != nil {
		return u, nil // the same request again: the same update
	}
	for field, raw := range map[string]json.RawMessage{"labels": req.Labels, "taints": req.Taints, "scalingConfig": req.ScalingConfig, "nodeRepairConfig": req.NodeRepairConfig} {
		if len(raw) > 0 && string(raw) != "null" {
			return nil, invalidParam("The sandbox's endpoint changes only updateConfig with UpdateNodegroupConfig, not %s.", field)
		}
	}
	c := req.UpdateConfig
	if c == nil || (c.MaxUnavailable == nil && c.MaxUnavailablePercentage == nil && c.UpdateStrategy == nil) {
		return nil, invalidParam("No changes needed for the nodegroup %s: give updateConfig.maxUnavailable, updateConfig.maxUnavailablePercentage or updateConfig.updateStrategy.", name)
	}
	if c.MaxUnavailable != nil && c.MaxUnavailablePercentage != nil {
		return nil, invalidParam("Only one of maxUnavailable and maxUnavailablePercentage may be specified in updateConfig.")
	}
	var params []UpdateParam
	if s := c.UpdateStrategy; s != nil {
		if *s != "DEFAULT" && *s != "MINIMAL" {
			return nil, invalidParam("updateStrategy must be DEFAULT or MINIMAL, was %q.", *s)
		}
		params = append(params, UpdateParam{"UpdateStrategy", *s})
	}
	var param UpdateParam
	switch {
	case c.MaxUnavailable == nil && c.MaxUnavailablePercentage == nil:
	case c.MaxUnavailable != nil && (*c.MaxUnavailable < 1 || *c.MaxUnavailable > 100):
		return nil, invalidParam("maxUnavailable must be between 1 and 100, was %d.", *c.MaxUnavailable)
	case c.MaxUnavailablePercentage != nil && (*c.MaxUnavailablePercentage < 1 || *c.MaxUnavailablePercentage > 100):
		return nil, invalidParam("maxUnavailablePercentage must be between 1 and 100, was %d.", *c.MaxUnavailablePercentage)
	case c.MaxUnavailable != nil:
		param = UpdateParam{"MaxUnavailable", fmt.Sprint(*c.MaxUnavailable)}
	default:
		param = UpdateParam{"MaxUnavailablePercentage", fmt.Sprint(*c.MaxUnavailablePercentage)}
	}
	if u := a.updating(cluster, name); u != nil {
		return nil, &APIError{Code: "ResourceInUseException", Message: fmt.Sprintf("Nodegroup %s is currently being updated (update %s).", name, u.ID), Status: 409}
	}
	if param.Type != "" {
		params = append(params, param)
	}
	u := &Update{ID: a.uuid(), Cluster: cluster, Nodegroup: name, Type: "ConfigUpdate", Status: "InProgress", Created: a.clock.Now(),
		token: req.ClientRequestToken, Params: params}
	if a.updates == nil {
		a.updates = map[string]*Update{}
	}
	a.updates[u.ID] = u
	ctx, delay := a.runCtx, a.managed.ConfigUpdate
	if ctx == nil {
		ctx = context.Background()
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(delay):
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		switch {
		case c.MaxUnavailable != nil:
			ng.MaxUnavailable, ng.MaxUnavailablePercentage = *c.MaxUnavailable, 0
		case c.MaxUnavailablePercentage != nil:
			ng.MaxUnavailable, ng.MaxUnavailablePercentage = 0, *c.MaxUnavailablePercentage
		}
		if c.UpdateStrategy != nil {
			ng.UpdateStrategy = *c.UpdateStrategy
		}
		u.Status = "Successful"
		a.poke()
	}()
	return u, nil
}

// eksImage is the AMI of like's family, architecture and variant for a
// minor: the given release, or the newest; callers hold mu.
func (a *Account) eksImage(like *Image, minor, release string) *Image {
	var best *Image
	for _, img := range a.images {
		if img.Family != like.Family || img.Architecture != like.Architecture || img.Variant != like.Variant || img.KubeMinor != minor {
			continue
		}
		if release != "" {
			if img.ReleaseVersion == release {
				return img
			}
			continue
		}
		if best == nil || img.CreationDate > best.CreationDate {
			best = img
		}
	}
	return best
}

func versionNewer(a, b string) bool {
	var am, bm int
	fmt.Sscanf(strings.TrimPrefix(a, "1."), "%d", &am)
	fmt.Sscanf(strings.TrimPrefix(b, "1."), "%d", &bm)
	return am > bm
}

// runUpdate plays EKS's update of a managed node group, after the setup:
// wait for a new node in every zone, taint the old nodes, then one at a
// time and at random drain an old node (evict, cordon), wait, terminate it
// through the group, wait for its replacement; finally scale back
// (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-update-behavior.html).
func (a *Account) runUpdate(ctx context.Context, u *Update, ops NodeOps, group string, _ int64, image string) {
	a.mu.Lock()
	r := &updateRun{a: a, ctx: ctx, u: u, ops: ops, group: group, image: image, t: a.managed}
	a.mu.Unlock()
	// EKS's phases, in order; each says false when the update failed or
	// was cut short, and nothing after it runs.
	// A surge waits for a new node in every zone first; MINIMAL has none.
	if r.waitSettled(u.surge > 0) && r.taintOld() && r.replaceOld() && r.scaleBack() && r.waitGone() {
		r.succeed()
	}
}
