package awssim

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

var ec2Actions = map[string]queryAction{
	"DescribeInstances":              describeInstances,
	"DescribeImages":                 describeImages,
	"DescribeLaunchTemplates":        describeLaunchTemplates,
	"DescribeLaunchTemplateVersions": describeLaunchTemplateVersions,
	"CreateLaunchTemplateVersion":    createLaunchTemplateVersion,
	"ModifyLaunchTemplate":           modifyLaunchTemplate,
	"DescribeInstanceTypes":          describeInstanceTypes,
}

// describeInstanceTypes answers with each type's architectures; an unknown
// type fails the call as EC2 words it.
func describeInstanceTypes(a *Account, form url.Values) (any, error) {
	names := list(form, "InstanceType")
	if len(names) == 0 {
		for n := range instanceTypes {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var unknown []string
	for _, n := range names {
		if _, ok := instanceTypes[n]; !ok {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, notFoundf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(unknown, ", "))
	}
	type xmlType struct {
		InstanceType string   `xml:"instanceType"`
		Archs        []string `xml:"processorInfo>supportedArchitectures>item"`
		VCPUs        int      `xml:"vCpuInfo>defaultVCpus"`
	}
	type body struct {
		ec2Meta
		Types []xmlType `xml:"instanceTypeSet>item"`
	}
	out := &body{Types: []xmlType{}}
	for _, n := range names {
		out.Types = append(out.Types, xmlType{InstanceType: n, Archs: []string{instanceTypes[n]}, VCPUs: instanceVCPUs[n]})
	}
	return &ec2Resp{action: "DescribeInstanceTypes", body: out}, nil
}

type xmlEC2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func ec2Tags(ts []Tag) []xmlEC2Tag {
	out := make([]xmlEC2Tag, 0, len(ts))
	for _, t := range ts {
		out = append(out, xmlEC2Tag{t.Key, t.Value})
	}
	return out
}

type xmlInstance struct {
	InstanceID string `xml:"instanceId"`
	ImageID    string `xml:"imageId"`
	State      struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	} `xml:"instanceState"`
	PrivateDNSName   string      `xml:"privateDnsName"`
	PrivateIPAddress string      `xml:"privateIpAddress"`
	InstanceType     string      `xml:"instanceType"`
	LaunchTime       string      `xml:"launchTime"`
	AvailabilityZone string      `xml:"placement>availabilityZone"`
	Tags             []xmlEC2Tag `xml:"tagSet>item"`
	Lifecycle        string      `xml:"instanceLifecycle,omitempty"` // "spot"; absent for On-Demand
}

var stateCodes = map[string]int{StatePending: 0, StateRunning: 16, StateShuttingDown: 32, StateTerminated: 48}

// ec2Filters reads Filter.N.Name / Filter.N.Value.M.
func ec2Filters(form url.Values) map[string][]string {
	out := map[string][]string{}
	for n := 1; ; n++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", n))
		if name == "" {
			return out
		}
		out[name] = list(form, fmt.Sprintf("Filter.%d.Value", n))
	}
}

func (a *Account) instanceMatches(i *Instance, filters map[string][]string) (bool, error) {
	for name, values := range filters {
		var have []string
		switch {
		case name == "instance-state-name":
			have = []string{i.State}
		case name == "availability-zone":
			have = []string{i.AZ}
		case name == "private-dns-name":
			have = []string{i.NodeName(a.Region)}
		case name == "image-id":
			have = []string{i.ImageID}
		case strings.HasPrefix(name, "tag:"):
			for _, t := range i.Tags {
				if t.Key == name[4:] {
					have = append(have, t.Value)
				}
			}
		default:
			return false, notFoundf("InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		hit := false
		for _, h := range have {
			hit = hit || contains(values, h)
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

func describeInstances(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := list(form, "InstanceId")
	if len(ids) > 0 && form.Get("MaxResults") != "" {
		return nil, notFoundf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	for _, id := range ids {
		if _, ok := a.instances[id]; !ok {
			return nil, notFoundf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	filters := ec2Filters(form)
	var picked []*Instance
	for _, i := range a.instances {
		if len(ids) > 0 && !contains(ids, i.ID) {
			continue
		}
		ok, err := a.instanceMatches(i, filters)
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, i)
		}
	}
	sort.Slice(picked, func(x, y int) bool { return picked[x].ID < picked[y].ID })
	from, to, next, err := instancesPages.window(form, len(picked))
	if err != nil {
		return nil, err
	}
	picked = picked[from:to]
	type reservation struct {
		ReservationID string        `xml:"reservationId"`
		OwnerID       string        `xml:"ownerId"`
		Instances     []xmlInstance `xml:"instancesSet>item"`
	}
	type body struct {
		ec2Meta
		Reservations []reservation `xml:"reservationSet>item"`
		NextToken    string        `xml:"nextToken,omitempty"`
	}
	out := &body{Reservations: []reservation{}, NextToken: next}
	for _, i := range picked {
		x := xmlInstance{
			InstanceID: i.ID, ImageID: i.ImageID, PrivateDNSName: i.NodeName(a.Region),
			PrivateIPAddress: i.PrivateIP, InstanceType: i.InstanceType,
			LaunchTime: awsTime(i.Launched), AvailabilityZone: i.AZ, Tags: ec2Tags(i.Tags),
		}
		x.State.Code, x.State.Name = stateCodes[i.State], i.State
		if i.Spot {
			x.Lifecycle = "spot"
		}
		out.Reservations = append(out.Reservations, reservation{
			ReservationID: "r-" + i.ID[2:], OwnerID: a.AccountID, Instances: []xmlInstance{x},
		})
	}
	return &ec2Resp{action: "DescribeInstances", body: out}, nil
}

var amiRE = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)

// checkImage validates an AMI ID as EC2 does: malformed or unknown.
func (a *Account) checkImage(id string) error {
	if !amiRE.MatchString(id) {
		return notFoundf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
	}
	if _, ok := a.images[id]; !ok {
		return notFoundf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return nil
}

func describeImages(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := list(form, "ImageId")
	for _, id := range ids {
		if err := a.checkImage(id); err != nil {
			return nil, err
		}
	}
	type xmlImage struct {
		ImageID      string `xml:"imageId"`
		Name         string `xml:"name"`
		Description  string `xml:"description"`
		State        string `xml:"imageState"`
		Architecture string `xml:"architecture"`
		CreationDate string `xml:"creationDate"`
		OwnerID      string `xml:"imageOwnerId"`
		OwnerAlias   string `xml:"imageOwnerAlias"`
		Platform     string `xml:"platform,omitempty"`
		Public       bool   `xml:"isPublic"`
	}
	type body struct {
		ec2Meta
		Images []xmlImage `xml:"imagesSet>item"`
	}
	out := &body{Images: []xmlImage{}}
	if len(ids) == 0 {
		for id := range a.images {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	owners := list(form, "Owner")
	filters := ec2Filters(form)
	for _, id := range ids {
		img := a.images[id]
		x := xmlImage{
			ImageID: img.ID, Name: img.Name, State: "available", Architecture: img.Architecture,
			Description:  fmt.Sprintf("EKS Kubernetes Worker AMI (%s) for Kubernetes %s, release %s", img.Family, img.KubeMinor, img.ReleaseVersion),
			CreationDate: img.CreationDate, OwnerID: publicImageOwner, OwnerAlias: "amazon", Public: true,
		}
		if img.Family == "windows" {
			x.Platform = "windows"
		}
		ok, err := imageMatches(x.OwnerID, x.OwnerAlias, a.AccountID, owners, filters, map[string]string{
			"image-id": x.ImageID, "name": x.Name, "architecture": x.Architecture, "state": x.State, "platform": x.Platform,
			"owner-id": x.OwnerID, "owner-alias": x.OwnerAlias, "is-public": "true", "description": x.Description,
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Images = append(out.Images, x)
		}
	}
	return &ec2Resp{action: "DescribeImages", body: out}, nil
}

// publicImageOwner is the account that publishes the EKS-optimized AMIs.
const publicImageOwner = "602401143452"

// imageMatches applies DescribeImages' Owner.N (an account ID, "self",
// "amazon" or "aws-marketplace") and Filter.N, whose values may hold the
// wildcards * and ?, as the EC2 API reference describes them.
func imageMatches(ownerID, ownerAlias, self string, owners []string, filters map[string][]string, fields map[string]string) (bool, error) {
	if len(owners) > 0 {
		hit := false
		for _, o := range owners {
			hit = hit || o == ownerID || o == ownerAlias || (o == "self" && ownerID == self)
		}
		if !hit {
			return false, nil
		}
	}
	for name, values := range filters {
		have, known := fields[name]
		if !known {
			return false, notFoundf("InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		hit := false
		for _, v := range values {
			hit = hit || wildcard(v, have)
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

// wildcard matches s against an EC2 filter value: * any run, ? one character.
func wildcard(pattern, s string) bool {
	re := "^" + regexp.QuoteMeta(pattern) + "$"
	re = strings.ReplaceAll(strings.ReplaceAll(re, `\*`, ".*"), `\?`, ".")
	ok, _ := regexp.MatchString(re, s)
	return ok
}

// templateByRequest finds the template a request names by ID or name.
func (a *Account) templateByRequest(form url.Values) (*LaunchTemplate, error) {
	id, name := form.Get("LaunchTemplateId"), form.Get("LaunchTemplateName")
	if id == "" && name == "" {
		return nil, notFoundf("MissingParameter", "The request must contain the parameter LaunchTemplateId or LaunchTemplateName")
	}
	lt := a.findTemplate(id, name)
	switch {
	case lt != nil:
		return lt, nil
	case id != "":
		return nil, notFoundf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
	default:
		return nil, notFoundf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
	}
}

type xmlLaunchTemplate struct {
	ID             string      `xml:"launchTemplateId"`
	Name           string      `xml:"launchTemplateName"`
	CreateTime     string      `xml:"createTime"`
	CreatedBy      string      `xml:"createdBy"`
	DefaultVersion int64       `xml:"defaultVersionNumber"`
	LatestVersion  int64       `xml:"latestVersionNumber"`
	Tags           []xmlEC2Tag `xml:"tagSet>item"`
}

func (a *Account) xmlTemplate(lt *LaunchTemplate) xmlLaunchTemplate {
	return xmlLaunchTemplate{
		ID: lt.ID, Name: lt.Name, CreateTime: awsTime(lt.Created),
		CreatedBy:      "arn:aws:iam::" + a.AccountID + ":role/eksctl",
		DefaultVersion: lt.DefaultVersion, LatestVersion: lt.latest().Number, Tags: ec2Tags(lt.Tags),
	}
}

func describeLaunchTemplates(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type body struct {
		ec2Meta
		Templates []xmlLaunchTemplate `xml:"launchTemplates>item"`
	}
	out := &body{Templates: []xmlLaunchTemplate{}}
	ids, names := list(form, "LaunchTemplateId"), list(form, "LaunchTemplateName")
	for _, id := range ids {
		lt := a.findTemplate(id, "")
		if lt == nil {
			return nil, notFoundf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
		out.Templates = append(out.Templates, a.xmlTemplate(lt))
	}
	for _, n := range names {
		lt := a.findTemplate("", n)
		if lt == nil {
			return nil, notFoundf("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
		}
		out.Templates = append(out.Templates, a.xmlTemplate(lt))
	}
	if len(ids)+len(names) == 0 {
		for _, lt := range a.templates {
			out.Templates = append(out.Templates, a.xmlTemplate(lt))
		}
		sort.Slice(out.Templates, func(x, y int) bool { return out.Templates[x].ID < out.Templates[y].ID })
	}
	return &ec2Resp{action: "DescribeLaunchTemplates", body: out}, nil
}

type xmlBlockDevice struct {
	DeviceName string `xml:"deviceName"`
	Ebs        struct {
		VolumeSize          int    `xml:"volumeSize"`
		VolumeType          string `xml:"volumeType"`
		Encrypted           bool   `xml:"encrypted"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	} `xml:"ebs"`
}

type xmlTagSpec struct {
	ResourceType string      `xml:"resourceType"`
	Tags         []xmlEC2Tag `xml:"tagSet>item"`
}

type xmlTemplateData struct {
	ImageID            string `xml:"imageId,omitempty"`
	InstanceType       string `xml:"instanceType,omitempty"`
	UserData           string `xml:"userData,omitempty"`
	KeyName            string `xml:"keyName,omitempty"`
	IamInstanceProfile *struct {
		Name string `xml:"name"`
	} `xml:"iamInstanceProfile,omitempty"`
	SecurityGroupIDs []string         `xml:"securityGroupIdSet>item"`
	BlockDevices     []xmlBlockDevice `xml:"blockDeviceMappingSet>item"`
	MetadataOptions  *struct {
		HTTPTokens           string `xml:"httpTokens"`
		HTTPPutHopLimit      int    `xml:"httpPutResponseHopLimit"`
		HTTPEndpoint         string `xml:"httpEndpoint"`
		HTTPProtocolIPv6     string `xml:"httpProtocolIpv6,omitempty"`
		InstanceMetadataTags string `xml:"instanceMetadataTags,omitempty"`
	} `xml:"metadataOptions,omitempty"`
	TagSpecs          []xmlTagSpec `xml:"tagSpecificationSet>item"`
	NetworkInterfaces []struct {
		DeviceIndex         int      `xml:"deviceIndex"`
		Groups              []string `xml:"groupSet>groupId"`
		AssociatePublicIP   bool     `xml:"associatePublicIpAddress"`
		DeleteOnTermination bool     `xml:"deleteOnTermination"`
		InterfaceType       string   `xml:"interfaceType,omitempty"`
	} `xml:"networkInterfaceSet>item"`
	Placement *struct {
		Tenancy string `xml:"tenancy"`
	} `xml:"placement,omitempty"`
	Monitoring *struct {
		Enabled bool `xml:"enabled"`
	} `xml:"monitoring,omitempty"`
	EbsOptimized        *bool `xml:"ebsOptimized,omitempty"`
	CreditSpecification *struct {
		CPUCredits string `xml:"cpuCredits"`
	} `xml:"creditSpecification,omitempty"`
	CapacityReservation *struct {
		Preference string `xml:"capacityReservationPreference"`
	} `xml:"capacityReservationSpecification,omitempty"`
	ShutdownBehavior      string `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	DisableAPITermination *bool  `xml:"disableApiTermination,omitempty"`
	PrivateDNSNameOptions *struct {
		HostnameType string `xml:"hostnameType"`
	} `xml:"privateDnsNameOptions,omitempty"`
}

type xmlTemplateVersion struct {
	ID          string          `xml:"launchTemplateId"`
	Name        string          `xml:"launchTemplateName"`
	Number      int64           `xml:"versionNumber"`
	Description string          `xml:"versionDescription,omitempty"`
	CreateTime  string          `xml:"createTime"`
	CreatedBy   string          `xml:"createdBy"`
	Default     bool            `xml:"defaultVersion"`
	Data        xmlTemplateData `xml:"launchTemplateData"`
}

func (a *Account) xmlVersion(lt *LaunchTemplate, v *TemplateVersion) xmlTemplateVersion {
	d := v.Data
	x := xmlTemplateVersion{
		ID: lt.ID, Name: lt.Name, Number: v.Number, Description: v.Description,
		CreateTime: awsTime(v.Created), CreatedBy: "arn:aws:iam::" + a.AccountID + ":role/eksctl",
		Default: v.Number == lt.DefaultVersion,
		Data: xmlTemplateData{
			ImageID: d.ImageID, InstanceType: d.InstanceType, UserData: d.UserData,
			KeyName: d.KeyName, SecurityGroupIDs: d.SecurityGroupIDs,
		},
	}
	if d.IamInstanceProfile != "" {
		x.Data.IamInstanceProfile = &struct {
			Name string `xml:"name"`
		}{d.IamInstanceProfile}
	}
	for _, b := range d.BlockDevices {
		xb := xmlBlockDevice{DeviceName: b.DeviceName}
		xb.Ebs.VolumeSize, xb.Ebs.VolumeType, xb.Ebs.Encrypted, xb.Ebs.DeleteOnTermination = b.VolumeSize, b.VolumeType, b.Encrypted, b.DeleteOnTermination
		x.Data.BlockDevices = append(x.Data.BlockDevices, xb)
	}
	if d.HTTPTokens != "" {
		x.Data.MetadataOptions = &struct {
			HTTPTokens           string `xml:"httpTokens"`
			HTTPPutHopLimit      int    `xml:"httpPutResponseHopLimit"`
			HTTPEndpoint         string `xml:"httpEndpoint"`
			HTTPProtocolIPv6     string `xml:"httpProtocolIpv6,omitempty"`
			InstanceMetadataTags string `xml:"instanceMetadataTags,omitempty"`
		}{d.HTTPTokens, d.HTTPPutHopLimit, d.HTTPEndpoint, d.HTTPProtocolIPv6, d.InstanceMetadataTags}
	}
	for _, n := range d.NetworkInterfaces {
		x.Data.NetworkInterfaces = append(x.Data.NetworkInterfaces, struct {
			DeviceIndex         int      `xml:"deviceIndex"`
			Groups              []string `xml:"groupSet>groupId"`
			AssociatePublicIP   bool     `xml:"associatePublicIpAddress"`
			DeleteOnTermination bool     `xml:"deleteOnTermination"`
			InterfaceType       string   `xml:"interfaceType,omitempty"`
		}{n.DeviceIndex, n.Groups, n.AssociatePublicIP, n.DeleteOnTermination, n.InterfaceType})
	}
	if d.PlacementTenancy != "" {
		x.Data.Placement = &struct {
			Tenancy string `xml:"tenancy"`
		}{d.PlacementTenancy}
	}
	if d.Monitoring {
		x.Data.Monitoring = &struct {
			Enabled bool `xml:"enabled"`
		}{true}
	}
	if d.EbsOptimized {
		x.Data.EbsOptimized = &d.EbsOptimized
	}
	if d.CPUCredits != "" {
		x.Data.CreditSpecification = &struct {
			CPUCredits string `xml:"cpuCredits"`
		}{d.CPUCredits}
	}
	if d.CapacityReservation != "" {
		x.Data.CapacityReservation = &struct {
			Preference string `xml:"capacityReservationPreference"`
		}{d.CapacityReservation}
	}
	x.Data.ShutdownBehavior = d.ShutdownBehavior
	if d.DisableAPITermination {
		x.Data.DisableAPITermination = &d.DisableAPITermination
	}
	if d.HostnameType != "" {
		x.Data.PrivateDNSNameOptions = &struct {
			HostnameType string `xml:"hostnameType"`
		}{d.HostnameType}
	}
	if len(d.InstanceTags) > 0 {
		x.Data.TagSpecs = append(x.Data.TagSpecs, xmlTagSpec{"instance", ec2Tags(d.InstanceTags)})
	}
	if len(d.VolumeTags) > 0 {
		x.Data.TagSpecs = append(x.Data.TagSpecs, xmlTagSpec{"volume", ec2Tags(d.VolumeTags)})
	}
	return x
}

func describeLaunchTemplateVersions(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lt, err := a.templateByRequest(form)
	if err != nil {
		return nil, err
	}
	type body struct {
		ec2Meta
		Versions []xmlTemplateVersion `xml:"launchTemplateVersionSet>item"`
	}
	out := &body{Versions: []xmlTemplateVersion{}}
	wanted := list(form, "LaunchTemplateVersion")
	if len(wanted) == 0 {
		for k := len(lt.Versions) - 1; k >= 0; k-- { // newest first
			out.Versions = append(out.Versions, a.xmlVersion(lt, lt.Versions[k]))
		}
	}
	for _, w := range wanted {
		v, ok := lt.resolve(w)
		if !ok {
			return nil, notFoundf("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for launch template ID %s.", w, lt.ID)
		}
		out.Versions = append(out.Versions, a.xmlVersion(lt, v))
	}
	return &ec2Resp{action: "DescribeLaunchTemplateVersions", body: out}, nil
}

func createLaunchTemplateVersion(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lt, err := a.templateByRequest(form)
	if err != nil {
		return nil, err
	}
	type body struct {
		ec2Meta
		Version xmlTemplateVersion `xml:"launchTemplateVersion"`
	}
	// A repeated client token answers with the version it created, as EC2
	// makes the call idempotent; with other parameters it is refused.
	token := form.Get("ClientToken")
	if len(token) > 128 {
		return nil, notFoundf("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. Length exceeds 128 characters.", token)
	}
	if n, ok := a.tokens[lt.ID+"/"+token]; ok && token != "" {
		v := lt.Versions[n-1]
		if img := form.Get("LaunchTemplateData.ImageId"); img != "" && img != v.Data.ImageID {
			return nil, notFoundf("IdempotentParameterMismatch", "The client token %s was already used with different parameters.", token)
		}
		return &ec2Resp{action: "CreateLaunchTemplateVersion", body: &body{Version: a.xmlVersion(lt, v)}}, nil
	}
	var data TemplateData
	if src := form.Get("SourceVersion"); src != "" {
		v, ok := lt.resolve(src)
		if !ok {
			return nil, notFoundf("InvalidLaunchTemplateId.VersionNotFound", "Could not find source launch template version %s for launch template ID %s.", src, lt.ID)
		}
		data = v.Data
		data.SecurityGroupIDs = append([]string(nil), data.SecurityGroupIDs...)
		data.BlockDevices = append([]BlockDevice(nil), data.BlockDevices...)
		data.InstanceTags = append([]Tag(nil), data.InstanceTags...)
		data.VolumeTags = append([]Tag(nil), data.VolumeTags...)
		data.NetworkInterfaces = append([]NetworkInterface(nil), data.NetworkInterfaces...)
		for k := range data.NetworkInterfaces {
			data.NetworkInterfaces[k].Groups = append([]string(nil), data.NetworkInterfaces[k].Groups...)
		}
	}
	if v := form.Get("LaunchTemplateData.ImageId"); v != "" {
		if err := a.checkImage(v); err != nil {
			return nil, err
		}
		data.ImageID = v
	}
	if v := form.Get("LaunchTemplateData.InstanceType"); v != "" {
		data.InstanceType = v
	}
	if v := form.Get("LaunchTemplateData.UserData"); v != "" {
		data.UserData = v
	}
	if v := form.Get("LaunchTemplateData.KeyName"); v != "" {
		data.KeyName = v
	}
	if data.ImageID == "" {
		return nil, notFoundf("InvalidLaunchTemplateData", "The launch template data must specify an image ID, or name a source version that does.")
	}
	v := &TemplateVersion{Number: int64(len(lt.Versions) + 1), Description: form.Get("VersionDescription"), Created: a.clock.Now(), Data: data}
	lt.Versions = append(lt.Versions, v)
	if token != "" {
		a.tokens[lt.ID+"/"+token] = v.Number
	}
	return &ec2Resp{action: "CreateLaunchTemplateVersion", body: &body{Version: a.xmlVersion(lt, v)}}, nil
}

func modifyLaunchTemplate(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lt, err := a.templateByRequest(form)
	if err != nil {
		return nil, err
	}
	if d := form.Get("SetDefaultVersion"); d != "" {
		v, ok := lt.resolve(d)
		if !ok {
			return nil, notFoundf("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for launch template ID %s.", d, lt.ID)
		}
		lt.DefaultVersion = v.Number
	}
	type body struct {
		ec2Meta
		Template xmlLaunchTemplate `xml:"launchTemplate"`
	}
	return &ec2Resp{action: "ModifyLaunchTemplate", body: &body{Template: a.xmlTemplate(lt)}}, nil
}
