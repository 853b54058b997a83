package awssim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

const eksContentType = "application/json"

// serveEKS answers the restJson1 calls noderoll makes: ListClusters,
// DescribeCluster, ListNodegroups, DescribeNodegroup, and a managed node
// group's update: UpdateNodegroupVersion, DescribeUpdate, ListUpdates; and
// CreateNodegroup and DeleteNodegroup, so that a sandbox holds as many
// managed groups as a test or a user makes.
func (s *Server) serveEKS(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	action := ""
	switch {
	case r.Method == http.MethodGet && len(parts) == 1:
		action = "ListClusters"
	case r.Method == http.MethodGet && len(parts) == 2:
		action = "DescribeCluster"
	case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "node-groups":
		action = "ListNodegroups"
	case r.Method == http.MethodGet && len(parts) == 4 && parts[2] == "node-groups":
		action = "DescribeNodegroup"
	case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "node-groups":
		action = "CreateNodegroup"
	case r.Method == http.MethodDelete && len(parts) == 4 && parts[2] == "node-groups":
		action = "DeleteNodegroup"
	case r.Method == http.MethodPost && len(parts) == 5 && parts[2] == "node-groups" && parts[4] == "update-version":
		action = "UpdateNodegroupVersion"
	case r.Method == http.MethodPost && len(parts) == 5 && parts[2] == "node-groups" && parts[4] == "update-config":
		action = "UpdateNodegroupConfig"
	case r.Method == http.MethodGet && len(parts) == 4 && parts[2] == "updates":
		action = "DescribeUpdate"
	case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "updates":
		action = "ListUpdates"
	default:
		writeJSONError(w, &APIError{Code: "InvalidRequestException", Message: r.Method + " " + r.URL.Path + " is not served by this endpoint.", Status: 400}, eksContentType)
		return
	}
	if e := s.acct.throttled("eks"); e != nil {
		s.acct.logCall(Call{Service: "eks", Action: action, AccessKey: accessKeyOf(r), Error: e.Code})
		writeJSONError(w, e, eksContentType)
		return
	}
	s.acct.logCall(Call{Service: "eks", Action: action, AccessKey: accessKeyOf(r)})
	if f := s.acct.takeFault("eks", action); f != nil {
		f.stall(r.Context())
		if e := f.apiError(); e != nil {
			writeJSONError(w, e, eksContentType)
			return
		}
	}
	switch action {
	case "UpdateNodegroupVersion", "UpdateNodegroupConfig", "DescribeUpdate", "ListUpdates":
		s.serveNodegroupUpdate(w, r, action, parts)
		return
	case "CreateNodegroup", "DeleteNodegroup":
		s.serveNodegroupLifecycle(w, r, action, parts)
		return
	}
	a := s.acct
	a.mu.Lock()
	out, apiErr := a.eksCall(action, parts)
	a.mu.Unlock()
	if apiErr != nil {
		writeJSONError(w, apiErr, eksContentType)
		return
	}
	writeJSON(w, http.StatusOK, eksContentType, out)
}

func eksNotFound(format string, args ...any) *APIError {
	return &APIError{Code: "ResourceNotFoundException", Message: fmt.Sprintf(format, args...), Status: 404}
}

// eksCall runs one EKS call; callers hold mu.
func (a *Account) eksCall(action string, parts []string) (any, *APIError) {
	if action == "ListClusters" {
		names := []string{}
		for n := range a.clusters {
			names = append(names, n)
		}
		sort.Strings(names)
		return map[string]any{"clusters": names}, nil
	}
	c, ok := a.clusters[parts[1]]
	if !ok {
		return nil, eksNotFound("No cluster found for name: %s.", parts[1])
	}
	switch action {
	case "DescribeCluster":
		return map[string]any{"cluster": map[string]any{
			"name": c.Name, "arn": c.ARN, "version": c.Version, "endpoint": c.Endpoint,
			"status": "ACTIVE", "platformVersion": c.PlatformVersion, "createdAt": c.Created.Unix(),
			"roleArn": "arn:aws:iam::" + a.AccountID + ":role/eksctl-" + c.Name + "-cluster-ServiceRole",
		}}, nil
	case "ListNodegroups":
		names := []string{}
		for _, ng := range a.nodegroups {
			if ng.Cluster == c.Name {
				names = append(names, ng.Name)
			}
		}
		sort.Strings(names)
		return map[string]any{"nodegroups": names}, nil
	}
	ng, ok := a.nodegroups[c.Name+"/"+parts[3]]
	if !ok {
		return nil, eksNotFound("No node group found for name: %s.", parts[3])
	}
	g := a.groups[ng.Group]
	status := "ACTIVE"
	if a.updating(c.Name, ng.Name) != nil {
		status = "UPDATING"
	}
	out := map[string]any{
		"nodegroupName": ng.Name, "nodegroupArn": ng.ARN, "clusterName": c.Name,
		"status": status, "capacityType": ng.CapacityType, "amiType": ng.AmiType,
		"instanceTypes": ng.InstanceTypes, "subnets": g.Subnets, "labels": ng.Labels,
		"createdAt": ng.Created.Unix(), "modifiedAt": ng.Created.Unix(),
		"nodeRole":      "arn:aws:iam::" + a.AccountID + ":role/eksctl-" + c.Name + "-nodegroup-NodeInstanceRole",
		"scalingConfig": map[string]int{"minSize": g.Min, "maxSize": g.Max, "desiredSize": g.Desired},
		"updateConfig":  ng.updateConfig(),
		"resources":     map[string]any{"autoScalingGroups": []map[string]string{{"name": g.Name}}},
	}
	issues := []any{}
	lt := a.findTemplate(ng.TemplateID, "")
	if lt != nil {
		// What EKS reports is its own record of the group's template
		// version, and the AMI that version launches; a group whose Auto
		// Scaling group launches another version has a health issue
		// (API_Issue: Ec2LaunchTemplateVersionMismatch).
		if !ng.EKSTemplate {
			out["launchTemplate"] = map[string]string{"id": lt.ID, "name": lt.Name, "version": fmt.Sprint(ng.TemplateVersion)}
		}
		if v, ok := lt.resolve(fmt.Sprint(ng.TemplateVersion)); ok {
			if img := a.images[v.Data.ImageID]; img != nil {
				out["version"], out["releaseVersion"] = img.KubeMinor, img.ReleaseVersion
			}
		}
		if v, ok := lt.resolve(g.Template.Version); ok && v.Number != ng.TemplateVersion {
			issues = append(issues, map[string]any{"code": "Ec2LaunchTemplateVersionMismatch",
				"message":     fmt.Sprintf("The Amazon EC2 launch template version for your managed node group does not match the version that Amazon EKS created (%d, the Auto Scaling group launches %d).", ng.TemplateVersion, v.Number),
				"resourceIds": []string{g.Name}})
		}
	}
	out["health"] = map[string]any{"issues": issues}
	return map[string]any{"nodegroup": out}, nil
}
