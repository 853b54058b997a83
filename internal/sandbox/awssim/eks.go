package awssim

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
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
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "cluster-versions":
		action = "DescribeClusterVersions"
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
	if action == "DescribeClusterVersions" {
		out, apiErr := a.clusterVersions(r.URL.Query())
		if apiErr != nil {
			writeJSONError(w, apiErr, eksContentType)
			return
		}
		writeJSON(w, http.StatusOK, eksContentType, out)
		return
	}
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
		return map[string]any{"cluster": a.describeCluster(c)}, nil
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

// describeCluster is a cluster as EKS's DescribeCluster answers (API
// reference, Cluster): every field a client building a kubeconfig or
// eksctl reads is there, the certificate authority of the sandbox's API
// server among them; callers hold mu.
func (a *Account) describeCluster(c *Cluster) map[string]any {
	tags := map[string]string{"alpha.eksctl.io/cluster-name": c.Name, "eksctl.cluster.k8s.io/v1alpha1/cluster-name": c.Name}
	return map[string]any{
		"name": c.Name, "arn": c.ARN, "version": c.Version, "endpoint": c.Endpoint,
		"status": "ACTIVE", "platformVersion": c.PlatformVersion, "createdAt": c.Created.Unix(),
		"roleArn":              "arn:aws:iam::" + a.AccountID + ":role/eksctl-" + c.Name + "-cluster-ServiceRole",
		"certificateAuthority": map[string]string{"data": base64.StdEncoding.EncodeToString(c.CA)},
		"resourcesVpcConfig": map[string]any{
			"vpcId": c.VpcID, "subnetIds": c.SubnetIDs, "securityGroupIds": []string{}, "clusterSecurityGroupId": c.SecurityGroupID,
			"endpointPublicAccess": true, "endpointPrivateAccess": false, "publicAccessCidrs": []string{"0.0.0.0/0"},
		},
		"kubernetesNetworkConfig": map[string]any{"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4", "elasticLoadBalancing": map[string]bool{"enabled": false}},
		"identity":                map[string]any{"oidc": map[string]string{"issuer": fmt.Sprintf("https://oidc.eks.%s.amazonaws.com/id/%s", a.Region, c.UID)}},
		"logging":                 map[string]any{"clusterLogging": []map[string]any{{"types": []string{"api", "audit", "authenticator", "controllerManager", "scheduler"}, "enabled": false}}},
		"tags":                    tags,
		"accessConfig":            map[string]any{"authenticationMode": "API_AND_CONFIG_MAP"},
		"upgradePolicy":           map[string]string{"supportType": "STANDARD"},
		"health":                  map[string]any{"issues": []any{}},
	}
}

// eksVersions are the Kubernetes minors EKS offers in the sandbox's time,
// with their release dates: each has 14 months of standard support and 12
// of extended support after. The sandbox publishes AMIs for the newest
// five (SupportedMinors); clusters of the older ones still exist.
var eksVersions = []struct {
	minor    string
	released time.Time
}{
	{"1.32", time.Date(2025, 1, 23, 0, 0, 0, 0, time.UTC)},
	{"1.33", time.Date(2025, 5, 29, 0, 0, 0, 0, time.UTC)},
	{"1.34", time.Date(2025, 10, 2, 0, 0, 0, 0, time.UTC)},
	{"1.35", time.Date(2026, 1, 27, 0, 0, 0, 0, time.UTC)},
	{"1.36", time.Date(2026, 5, 28, 0, 0, 0, 0, time.UTC)},
	{"1.37", time.Date(2026, 9, 24, 0, 0, 0, 0, time.UTC)},
}

// clusterVersions answers DescribeClusterVersions (GET /cluster-versions):
// each minor's support as of the account's clock, the newest the default.
// Filters: clusterVersions, defaultOnly, status and versionStatus,
// includeAll (without it, unsupported minors are left out); one page.
func (a *Account) clusterVersions(q url.Values) (any, *APIError) {
	if t := q.Get("clusterType"); t != "" && t != "eks" && t != "eks-local-outposts" {
		return nil, invalidParam("clusterType must be eks or eks-local-outposts, was %q.", t)
	}
	now := a.clock.Now()
	newest := eksVersions[len(eksVersions)-1].minor
	out := []map[string]any{}
	for _, ver := range eksVersions {
		m := ver.minor
		endStandard, endExtended := ver.released.AddDate(0, 14, 0), ver.released.AddDate(0, 26, 0)
		status := "STANDARD_SUPPORT"
		switch {
		case now.After(endExtended):
			status = "UNSUPPORTED"
		case now.After(endStandard):
			status = "EXTENDED_SUPPORT"
		}
		if ws := q["clusterVersions"]; len(ws) > 0 && !slices.Contains(ws, m) {
			continue
		}
		if q.Get("defaultOnly") == "true" && m != newest {
			continue
		}
		if st := cmp.Or(q.Get("versionStatus"), q.Get("status")); st != "" && !strings.EqualFold(strings.ReplaceAll(st, "-", "_"), status) {
			continue
		}
		if status == "UNSUPPORTED" && q.Get("includeAll") != "true" {
			continue
		}
		out = append(out, map[string]any{
			"clusterVersion": m, "clusterType": "eks", "defaultPlatformVersion": "eks.3", "defaultVersion": m == newest,
			"releaseDate": ver.released.Unix(), "endOfStandardSupportDate": endStandard.Unix(), "endOfExtendedSupportDate": endExtended.Unix(),
			"status": strings.ToLower(strings.ReplaceAll(status, "_", "-")), "versionStatus": status, "kubernetesPatchVersion": m + ".2",
		})
	}
	return map[string]any{"clusterVersions": out}, nil
}
