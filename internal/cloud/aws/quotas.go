package aws

// Quotas: the account's EC2 vCPU quota the surge launches count against.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/noderoll/noderoll/internal/cloud"
)

// EC2's vCPU quotas, by Service Quotas code: the kinds noderoll checks.
// Instance families come under a quota by their first letters
// ("Amazon EC2 instance type quotas" in the EC2 user guide).
var vcpuQuotas = []struct {
	code, name string
	spot       bool
	families   func(family string) bool
}{
	{"L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", false, standardFamily},
	{"L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", true, standardFamily},
	{"L-DB2E81BA", "Running On-Demand G and VT instances", false, func(f string) bool { return strings.HasPrefix(f, "g") || strings.HasPrefix(f, "vt") }},
	{"L-417A185B", "Running On-Demand P instances", false, func(f string) bool { return strings.HasPrefix(f, "p") }},
}

func standardFamily(f string) bool {
	if strings.HasPrefix(f, "inf") || strings.HasPrefix(f, "trn") || f == "" {
		return false
	}
	return strings.ContainsRune("acdhimrtz", rune(f[0]))
}

func familyOf(instanceType string) string { return strings.SplitN(instanceType, ".", 2)[0] }

// InstanceQuota implements cloud.Provider: the quota's value from Service
// Quotas, and the vCPUs of the Region's running and pending instances that
// count against it (Service Quotas gives the limit, not the usage).
func (p *Provider) InstanceQuota(ctx context.Context, g cloud.NodeGroup) (cloud.Quota, error) {
	if p.quotas == nil || len(g.InstanceTypes) == 0 {
		return cloud.Quota{}, cloud.NotFoundf(nil, "instance quota of %s", g.Name)
	}
	var q cloud.Quota
	var applies func(string) bool
	for _, k := range vcpuQuotas {
		if k.spot == g.Spot && k.families(familyOf(g.InstanceTypes[0])) {
			q.Code, q.Name, applies = k.code, k.name, k.families
		}
	}
	if q.Code == "" {
		return q, cloud.NotFoundf(nil, "a vCPU quota noderoll knows for %s instances", g.InstanceTypes[0])
	}
	out, err := p.quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(q.Code)})
	if err != nil {
		return q, fmt.Errorf("reading EC2 quota %s (%s): %w", q.Code, q.Name, err)
	}
	if out.Quota != nil {
		q.Limit = aws.ToFloat64(out.Quota.Value)
	}
	var running []ec2types.Instance
	pager := ec2.NewDescribeInstancesPaginator(p.ec2, &ec2.DescribeInstancesInput{
		Filters:    []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}},
		MaxResults: aws.Int32(1000),
	})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return q, fmt.Errorf("listing running instances for quota %s: %w", q.Code, err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				spot := i.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot
				if spot == g.Spot && applies(familyOf(string(i.InstanceType))) {
					running = append(running, i)
				}
			}
		}
	}
	types := slices.Clone(g.InstanceTypes)
	for _, i := range running {
		types = append(types, string(i.InstanceType))
	}
	vcpus, err := p.vcpus(ctx, types)
	if err != nil {
		return q, err
	}
	for _, i := range running {
		q.Used += float64(vcpus[string(i.InstanceType)])
	}
	for _, t := range g.InstanceTypes {
		q.PerInstance = max(q.PerInstance, vcpus[t])
	}
	return q, nil
}

// vcpus returns the default vCPUs of each instance type.
func (p *Provider) vcpus(ctx context.Context, types []string) (map[string]int, error) {
	slices.Sort(types)
	types = slices.Compact(types)
	out := map[string]int{}
	for len(types) > 0 {
		n := min(len(types), 100) // DescribeInstanceTypes takes at most 100 names
		in := &ec2.DescribeInstanceTypesInput{}
		for _, t := range types[:n] {
			in.InstanceTypes = append(in.InstanceTypes, ec2types.InstanceType(t))
		}
		types = types[n:]
		pager := ec2.NewDescribeInstanceTypesPaginator(p.ec2, in)
		for pager.HasMorePages() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing instance types: %w", err)
			}
			for _, it := range page.InstanceTypes {
				if it.VCpuInfo != nil {
					out[string(it.InstanceType)] = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
				}
			}
		}
	}
	return out, nil
}
