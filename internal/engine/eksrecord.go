package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/noderoll/noderoll/internal/cloud"
)

// EKSRecord is noderoll having EKS record the launch template version a
// managed group launches after noderoll's own upgrade moved it there. EKS
// only learns of a version through one of its own updates; until then it
// reports Ec2LaunchTemplateVersionMismatch, and its next update of the
// group starts from the version it remembers. Its update with the MINIMAL
// strategy launches nothing first and replaces only nodes off the target:
// none, since every node already runs it. The group's strategy is set to
// MINIMAL for that update and given back after.
type EKSRecord struct {
	// UserStrategy is the group's update strategy before noderoll set
	// MINIMAL: what is restored, also by a run resumed after a kill.
	UserStrategy string `json:"userStrategy"`
	// Version is the launch template version to record.
	Version int64 `json:"version"`
	// Updates are the EKS updates started for it, in order.
	Updates []string `json:"updates,omitempty"`
	// Replaced are nodes EKS's update replaced all the same (none
	// expected: every node runs the version recorded).
	Replaced []string `json:"replaced,omitempty"`
	Done     bool     `json:"done,omitempty"`
}

// recordWithEKS is the run's last step on a managed group with a launch
// template of the user's: EKS records the version the group launches. It
// is idempotent: each update is started only while the group still needs
// it, and one in progress (this step's own, cut short by a kill) is
// followed to its end first.
func (u *upgrade) recordWithEKS(ctx context.Context) error {
	if u.managed == nil {
		return nil
	}
	if err := u.refresh(ctx); err != nil {
		return err
	}
	r := u.rec.EKSRecord
	if r == nil {
		if !recordLags(u.group) {
			return nil
		}
		r = &EKSRecord{UserStrategy: u.group.UpdateConfig.StrategyOrDefault(), Version: u.group.TemplateVersion}
		u.rec.EKSRecord = r
		// Saved before anything changes: a run killed from here on
		// knows what to give back.
		if err := u.save(ctx); err != nil {
			return err
		}
	}
	if r.Done {
		return nil
	}
	k := u.startStep("EKS record")
	ref := cloud.NodeGroupRef{Cluster: u.rec.Cluster, Name: u.rec.Nodegroup}
	// EKS takes one update of a group at a time.
	if id, err := u.managed.ManagedUpdateInProgress(ctx, ref); err != nil {
		return err
	} else if id != "" {
		u.report.Info(fmt.Sprintf("EKS update %s of %s is in progress; waiting for it to end before EKS records the launch template version", id, ref))
		if _, err := u.waitManaged(ctx, ref, id); err != nil {
			return err
		}
		if err := u.refresh(ctx); err != nil {
			return err
		}
	}
	if recordLags(u.group) && u.group.UpdateConfig.StrategyOrDefault() != cloud.StrategyMinimal {
		if err := u.eksUpdate(ctx, ref, "update strategy MINIMAL, so that EKS's update replaces no node that runs the target (UpdateNodegroupConfig)", func() (string, error) {
			return u.managed.StartManagedConfigUpdate(ctx, ref, cloud.UpdateConfig{Strategy: cloud.StrategyMinimal})
		}); err != nil {
			return err
		}
	}
	if recordLags(u.group) {
		before := liveInstances(u.group)
		v := u.group.TemplateVersion
		if err := u.eksUpdate(ctx, ref, fmt.Sprintf("recording launch template %s version %d (UpdateNodegroupVersion)", u.group.TemplateID, v), func() (string, error) {
			return u.managed.StartManagedUpdate(ctx, ref, cloud.ManagedUpdate{TemplateVersion: v})
		}); err != nil {
			return err
		}
		after := liveInstances(u.group)
		for _, id := range before {
			if !slices.Contains(after, id) {
				r.Replaced = append(r.Replaced, id)
			}
		}
		if len(r.Replaced) > 0 {
			u.report.Warn("", fmt.Sprintf("EKS's update replaced %d nodes that already ran the target: %s", len(r.Replaced), strings.Join(r.Replaced, ", ")))
		}
	}
	if r.UserStrategy != cloud.StrategyMinimal && u.group.UpdateConfig.StrategyOrDefault() == cloud.StrategyMinimal {
		if err := u.eksUpdate(ctx, ref, "update strategy back to "+r.UserStrategy+" (UpdateNodegroupConfig)", func() (string, error) {
			return u.managed.StartManagedConfigUpdate(ctx, ref, cloud.UpdateConfig{Strategy: r.UserStrategy})
		}); err != nil {
			return err
		}
	}
	r.Done = true
	u.rec.Steps[k].End = u.clock.Now().UTC()
	u.report.Step(0, "EKS record", fmt.Sprintf("EKS records launch template %s version %d for %s, the version its Auto Scaling group launches; %d nodes replaced by it; update strategy %s as before",
		u.group.TemplateID, u.group.EKSTemplateVersion, ref, len(r.Replaced), r.UserStrategy))
	return u.save(ctx)
}

// eksUpdate starts one EKS update, keeps its ID in the record, follows it
// to its end and reads the group afresh.
func (u *upgrade) eksUpdate(ctx context.Context, ref cloud.NodeGroupRef, what string, start func() (string, error)) error {
	id, err := start()
	if err != nil {
		return fmt.Errorf("asking EKS to record the launch template version of %s: %w", ref, err)
	}
	u.rec.EKSRecord.Updates = append(u.rec.EKSRecord.Updates, id)
	if err := u.save(ctx); err != nil {
		return err
	}
	u.report.Info(fmt.Sprintf("EKS update %s: %s", id, what))
	if _, err := u.waitManaged(ctx, ref, id); err != nil {
		return err
	}
	return u.refresh(ctx)
}

// liveInstances are the group's instances not on their way out.
func liveInstances(g cloud.NodeGroup) []string {
	var out []string
	for _, i := range g.Instances {
		if !i.Terminating() {
			out = append(out, i.ID)
		}
	}
	return out
}
