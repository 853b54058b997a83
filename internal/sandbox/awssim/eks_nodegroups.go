package awssim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// createNodegroupRequest is CreateNodegroup's body, as the EKS API
// reference defines it (the fields this endpoint plays).
type createNodegroupRequest struct {
	NodegroupName string   `json:"nodegroupName"`
	Subnets       []string `json:"subnets"`
	NodeRole      string   `json:"nodeRole"`
	ScalingConfig *struct {
		MinSize     *int `json:"minSize"`
		MaxSize     *int `json:"maxSize"`
		DesiredSize *int `json:"desiredSize"`
	} `json:"scalingConfig"`
	InstanceTypes  []string            `json:"instanceTypes"`
	AmiType        string              `json:"amiType"`
	CapacityType   string              `json:"capacityType"`
	Version        string              `json:"version"`
	ReleaseVersion string              `json:"releaseVersion"`
	LaunchTemplate *launchTemplateSpec `json:"launchTemplate"`
	UpdateConfig   *struct {
		MaxUnavailable           int `json:"maxUnavailable"`
		MaxUnavailablePercentage int `json:"maxUnavailablePercentage"`
	} `json:"updateConfig"`
	Labels             map[string]string `json:"labels"`
	ClientRequestToken string            `json:"clientRequestToken"`
}

// amiTypes are the AMI types this endpoint's catalog holds, as the image
// family, architecture and variant they launch.
var amiTypes = map[string]Image{
	"AL2023_x86_64_STANDARD": {Family: "al2023", Architecture: "x86_64", Variant: "standard"},
	"AL2023_ARM_64_STANDARD": {Family: "al2023", Architecture: "arm64", Variant: "standard"},
	"AL2023_x86_64_NVIDIA":   {Family: "al2023", Architecture: "x86_64", Variant: "nvidia"},
	"BOTTLEROCKET_x86_64":    {Family: "bottlerocket", Architecture: "x86_64", Variant: "standard"},
}

// serveNodegroupLifecycle answers CreateNodegroup and DeleteNodegroup.
func (s *Server) serveNodegroupLifecycle(w http.ResponseWriter, r *http.Request, action string, parts []string) {
	a := s.acct
	var out any
	var apiErr *APIError
	switch action {
	case "CreateNodegroup":
		var req createNodegroupRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSONError(w, &APIError{Code: "InvalidParameterException", Message: "The request body is not valid JSON: " + err.Error(), Status: 400}, eksContentType)
			return
		}
		out, apiErr = a.createNodegroup(parts[1], req)
	case "DeleteNodegroup":
		out, apiErr = a.deleteNodegroup(parts[1], parts[3])
	}
	if apiErr != nil {
		writeJSONError(w, apiErr, eksContentType)
		return
	}
	writeJSON(w, http.StatusOK, eksContentType, out)
}

// createNodegroup makes a managed node group as EKS does: a launch
// template of EKS's own, an Auto Scaling group over the given subnets,
// instances launching through the lifecycle and joining as nodes. It
// answers with the group as DescribeNodegroup shows it, CREATING.
func (a *Account) createNodegroup(cluster string, req createNodegroupRequest) (any, *APIError) {
	spec, apiErr := a.nodegroupSpec(cluster, req)
	if apiErr != nil {
		return nil, apiErr
	}
	if _, err := a.CreateNodeGroup(spec.GroupSpec); err != nil {
		return nil, invalidParam("%v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ng := a.nodegroups[cluster+"/"+req.NodegroupName]
	ng.InstanceTypes = spec.instanceTypes
	if u := req.UpdateConfig; u != nil && u.MaxUnavailablePercentage > 0 {
		ng.MaxUnavailable, ng.MaxUnavailablePercentage = 0, u.MaxUnavailablePercentage
	}
	out, apiErr := a.eksCall("DescribeNodegroup", []string{"clusters", cluster, "node-groups", req.NodegroupName})
	if apiErr != nil {
		return nil, apiErr
	}
	out.(map[string]any)["nodegroup"].(map[string]any)["status"] = "CREATING"
	return out, nil
}

// nodegroupSpec validates a CreateNodegroup request as EKS does, filling
// in EKS's defaults, and turns it into the group to make.
func (a *Account) nodegroupSpec(cluster string, req createNodegroupRequest) (nodegroupSpec, *APIError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.clusters[cluster]
	switch {
	case !ok:
		return nodegroupSpec{}, eksNotFound("No cluster found for name: %s.", cluster)
	case req.NodegroupName == "":
		return nodegroupSpec{}, invalidParam("nodegroupName is required.")
	case len(req.Subnets) == 0:
		return nodegroupSpec{}, invalidParam("subnets is required: give the subnets of the cluster's VPC the nodes go in.")
	case req.NodeRole == "":
		return nodegroupSpec{}, invalidParam("nodeRole is required: the IAM role of the nodes.")
	case req.LaunchTemplate != nil:
		return nodegroupSpec{}, invalidParam("launchTemplate: this endpoint makes a node group's launch template itself; leave launchTemplate out.")
	}
	if _, exists := a.nodegroups[cluster+"/"+req.NodegroupName]; exists {
		return nodegroupSpec{}, &APIError{Code: "ResourceInUseException", Message: fmt.Sprintf("NodeGroup already exists with name %s and cluster name %s", req.NodegroupName, cluster), Status: 409}
	}
	// Each subnet is one the account's groups already use: its AZ is theirs.
	var azs []string
	for _, sub := range req.Subnets {
		az := ""
		for _, g := range a.groups {
			if k := slices.Index(g.Subnets, sub); k >= 0 && k < len(g.AZs) {
				az = g.AZs[k]
			}
		}
		if az == "" {
			return nodegroupSpec{}, invalidParam("Subnet %s is not in the VPC of cluster %s.", sub, cluster)
		}
		azs = append(azs, az)
	}
	minSize, maxSize, desired := 2, 2, 2 // EKS's defaults
	if sc := req.ScalingConfig; sc != nil {
		minSize, maxSize, desired = given(sc.MinSize, minSize), given(sc.MaxSize, maxSize), given(sc.DesiredSize, desired)
	}
	if minSize < 0 || minSize > desired || desired > maxSize || maxSize < 1 {
		return nodegroupSpec{}, invalidParam("scalingConfig: want 0 <= minSize <= desiredSize <= maxSize and maxSize >= 1 (got %d, %d, %d).", minSize, desired, maxSize)
	}
	amiType := cmp.Or(req.AmiType, "AL2023_x86_64_STANDARD")
	like, ok := amiTypes[amiType]
	if !ok {
		return nodegroupSpec{}, invalidParam("amiType %s is not one this endpoint serves (%s).", amiType, strings.Join(sortedKeys(amiTypes), ", "))
	}
	version := cmp.Or(req.Version, c.Version)
	if versionNewer(version, c.Version) {
		return nodegroupSpec{}, invalidParam("Requested Nodegroup version %s is newer than the cluster version %s.", version, c.Version)
	}
	img := a.eksImage(&like, version, req.ReleaseVersion)
	if img == nil {
		return nodegroupSpec{}, invalidParam("Requested release version %q is not valid for Kubernetes version %s and AMI type %s.", req.ReleaseVersion, version, amiType)
	}
	instanceTypes := req.InstanceTypes
	if len(instanceTypes) == 0 {
		instanceTypes = []string{"t3.medium"} // EKS's default
	}
	spec := nodegroupSpec{GroupSpec: GroupSpec{
		Cluster: cluster, Name: req.NodegroupName, Managed: true, AZs: azs, Subnets: req.Subnets,
		Min: minSize, Max: maxSize, Desired: desired, InstanceType: instanceTypes[0], ImageID: img.ID,
		EKSTemplate: true, AmiType: amiType, Labels: req.Labels,
	}, instanceTypes: instanceTypes}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	if u := req.UpdateConfig; u != nil {
		spec.MaxUnavailable = u.MaxUnavailable
	}
	return spec, nil
}

// nodegroupSpec is a group CreateNodegroup makes, with every instance type
// it named (the launch template takes the first).
type nodegroupSpec struct {
	GroupSpec
	instanceTypes []string
}

// given is *p when the request gave it (0 included), else def.
func given(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// deleteNodegroup removes a managed node group: EKS drains nothing here
// (noderoll's own runs do that), it scales the Auto Scaling group to zero,
// whose instances then shut down and leave, and forgets the node group.
// It answers with the group as it was, DELETING.
func (a *Account) deleteNodegroup(cluster, name string) (any, *APIError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out, apiErr := a.eksCall("DescribeNodegroup", []string{"clusters", cluster, "node-groups", name})
	if apiErr != nil {
		return nil, apiErr
	}
	ng := a.nodegroups[cluster+"/"+name]
	if a.updating(cluster, name) != nil {
		return nil, &APIError{Code: "ResourceInUseException", Message: fmt.Sprintf("Nodegroup %s is currently being updated and cannot be deleted.", name), Status: 409}
	}
	if g := a.groups[ng.Group]; g != nil {
		g.Min, g.Max, g.Desired = 0, 0, 0
	}
	delete(a.nodegroups, cluster+"/"+name)
	a.poke()
	out.(map[string]any)["nodegroup"].(map[string]any)["status"] = "DELETING"
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
