package aws

// Managed node groups: EKS's own updates (UpdateNodegroupVersion,
// UpdateNodegroupConfig), started and followed.

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/noderoll/noderoll/internal/cloud"
)

// StartManagedUpdate implements cloud.Provider with EKS's
// UpdateNodegroupVersion.
func (p *Provider) StartManagedUpdate(ctx context.Context, ref cloud.NodeGroupRef, u cloud.ManagedUpdate) (string, error) {
	// The SDK fills in a client request token once per call, so its own
	// retries ask for the same update.
	in := &eks.UpdateNodegroupVersionInput{ClusterName: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name), Force: u.Force}
	if u.KubernetesVersion != "" {
		in.Version = aws.String(u.KubernetesVersion)
	}
	if u.ReleaseVersion != "" {
		in.ReleaseVersion = aws.String(u.ReleaseVersion)
	}
	if u.TemplateVersion > 0 {
		g, err := p.NodeGroup(ctx, ref)
		if err != nil {
			return "", err
		}
		in.LaunchTemplate = &ekstypes.LaunchTemplateSpecification{Id: aws.String(g.TemplateID), Version: aws.String(strconv.FormatInt(u.TemplateVersion, 10))}
	}
	out, err := p.eks.UpdateNodegroupVersion(ctx, in)
	if isNotFound(err) {
		return "", cloud.NotFoundf(err, "EKS managed node group %s", ref)
	}
	if err != nil {
		return "", fmt.Errorf("asking EKS to update node group %s: %w", ref, err)
	}
	return aws.ToString(out.Update.Id), nil
}

// StartManagedConfigUpdate implements cloud.Provider with EKS's
// UpdateNodegroupConfig.
func (p *Provider) StartManagedConfigUpdate(ctx context.Context, ref cloud.NodeGroupRef, c cloud.UpdateConfig) (string, error) {
	// Only what is given changes: a strategy alone leaves the counts.
	uc := &ekstypes.NodegroupUpdateConfig{UpdateStrategy: ekstypes.NodegroupUpdateStrategies(c.Strategy)}
	switch {
	case c.MaxUnavailablePercentage > 0:
		uc.MaxUnavailablePercentage = aws.Int32(int32(c.MaxUnavailablePercentage))
	case c.MaxUnavailable > 0 || c.Strategy == "":
		uc.MaxUnavailable = aws.Int32(int32(c.MaxUnavailable))
	}
	out, err := p.eks.UpdateNodegroupConfig(ctx, &eks.UpdateNodegroupConfigInput{ClusterName: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name), UpdateConfig: uc})
	if isNotFound(err) {
		return "", cloud.NotFoundf(err, "EKS managed node group %s", ref)
	}
	if err != nil {
		return "", fmt.Errorf("setting the update config of node group %s to %s: %w", ref, c, err)
	}
	return aws.ToString(out.Update.Id), nil
}

// ManagedUpdate implements cloud.Provider with EKS's DescribeUpdate.
func (p *Provider) ManagedUpdate(ctx context.Context, ref cloud.NodeGroupRef, id string) (cloud.ManagedUpdateState, error) {
	out, err := p.eks.DescribeUpdate(ctx, &eks.DescribeUpdateInput{Name: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name), UpdateId: aws.String(id)})
	if err != nil {
		return cloud.ManagedUpdateState{}, fmt.Errorf("describing EKS update %s of %s: %w", id, ref, err)
	}
	st := cloud.ManagedUpdateState{ID: id, Type: string(out.Update.Type), Status: string(out.Update.Status)}
	for _, e := range out.Update.Errors {
		msg := string(e.ErrorCode) + ": " + aws.ToString(e.ErrorMessage)
		if len(e.ResourceIds) > 0 {
			msg += " (" + strings.Join(e.ResourceIds, ", ") + ")"
		}
		st.Errors = append(st.Errors, msg)
	}
	return st, nil
}

// ManagedUpdateInProgress implements cloud.Provider with EKS's ListUpdates.
func (p *Provider) ManagedUpdateInProgress(ctx context.Context, ref cloud.NodeGroupRef) (string, error) {
	pager := eks.NewListUpdatesPaginator(p.eks, &eks.ListUpdatesInput{Name: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("listing EKS updates of %s: %w", ref, err)
		}
		for _, id := range page.UpdateIds {
			st, err := p.ManagedUpdate(ctx, ref, id)
			if err != nil {
				return "", err
			}
			if st.Status == string(ekstypes.UpdateStatusInProgress) {
				return id, nil
			}
		}
	}
	return "", nil
}
