package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/noderoll/noderoll/internal/cloud"
)

// DowngradeError refuses a target older than what the group runs: EKS's own
// UpdateNodegroupVersion only moves a group forward, and a mistyped version
// must not roll a fleet back. Options.AllowDowngrade lets it through.
type DowngradeError struct {
	Group    cloud.NodeGroupRef
	From, To cloud.Image
}

func (e *DowngradeError) Error() string {
	return fmt.Sprintf("%s runs %s; the target %s is older: a downgrade, refused so that a mistyped version does not roll the group back "+
		"(nothing was changed). Pick Kubernetes %s or newer, or pass --allow-downgrade to go back on purpose "+
		"(--abort takes back an upgrade under way without it)", e.Group, describeImage(e.From), describeImage(e.To), e.From.KubeMinor)
}

func describeImage(i cloud.Image) string {
	var about []string
	if i.KubeMinor != "" {
		about = append(about, "Kubernetes "+i.KubeMinor)
	}
	if i.ReleaseVersion != "" {
		about = append(about, "release "+i.ReleaseVersion)
	}
	if len(about) == 0 {
		return i.ID
	}
	return i.ID + " (" + strings.Join(about, ", ") + ")"
}

// checkNotOlder refuses a target older than the AMI the group launches now:
// a lower Kubernetes minor, or an older release of the same minor. An image
// that says neither (a custom AMI) is not judged.
func (e *Engine) checkNotOlder(ctx context.Context, ref cloud.NodeGroupRef, g cloud.NodeGroup, t Target) error {
	if e.opts.AllowDowngrade || g.ImageID == "" || g.ImageID == t.ImageID {
		return nil
	}
	cur, err := e.cloud.ResolveImage(ctx, cloud.ImageQuery{ImageID: g.ImageID})
	if err != nil {
		// The group's AMI may be deregistered already: nothing to compare.
		e.log.Debug("the group's current AMI cannot be described; not judging a downgrade", "ami", g.ImageID, "err", err)
		return nil
	}
	to := cloud.Image{ID: t.ImageID, KubeMinor: t.KubeMinor, ReleaseVersion: t.ReleaseVersion}
	if older(to, cur) {
		return &DowngradeError{Group: ref, From: cur, To: to}
	}
	return nil
}

// older says whether a is older than b by Kubernetes minor, then by release
// ("1.37.2-20261115": patch, then date); false when either does not say.
func older(a, b cloud.Image) bool {
	am, aerr := minorOf(a.KubeMinor)
	bm, berr := minorOf(b.KubeMinor)
	if aerr != nil || berr != nil {
		return false
	}
	if am != bm {
		return am < bm
	}
	ar, aok := releaseKey(a.ReleaseVersion)
	br, bok := releaseKey(b.ReleaseVersion)
	if !aok || !bok {
		return false
	}
	for k := range ar {
		if ar[k] != br[k] {
			return ar[k] < br[k]
		}
	}
	return false
}

// releaseKey reads "1.37.2-20261115" as (37, 2, 20261115).
func releaseKey(r string) ([3]int, bool) {
	version, date, ok := strings.Cut(r, "-")
	parts := strings.Split(version, ".")
	if !ok || len(parts) != 3 {
		return [3]int{}, false
	}
	var key [3]int
	for k, s := range []string{parts[1], parts[2], date} {
		n, err := strconv.Atoi(s)
		if err != nil {
			return [3]int{}, false
		}
		key[k] = n
	}
	return key, true
}
