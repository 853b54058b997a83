package engine

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/terms"
)

// DowngradeError refuses a target older than what the group runs: EKS's own
// UpdateNodegroupVersion only moves a group forward, and a mistyped version
// must not roll a fleet back. Options.AllowDowngrade lets it through.
type DowngradeError struct {
	Group    cloud.NodeGroupRef
	From, To cloud.Image
	Terms    terms.Terms // how the front end names its options
}

func (e *DowngradeError) Error() string {
	pick := fmt.Sprintf("Kubernetes %s or newer", e.From.KubeMinor)
	if e.From.KubeMinor == e.To.KubeMinor {
		pick = fmt.Sprintf("a release of Kubernetes %s no older than the group's (%s takes the newest)", e.From.KubeMinor, e.Terms.With("kubernetes-version", e.From.KubeMinor))
	}
	return fmt.Sprintf("%s runs %s; the target %s is older: a downgrade, refused so that a mistyped version does not roll the group back "+
		"(nothing was changed). Pick %s, or set %s to go back on purpose "+
		"(%s takes back an upgrade under way without it)", e.Group, describeImage(e.From), describeImage(e.To), pick, e.Terms.Of("allow-downgrade"), e.Terms.Of("abort"))
}

func describeImage(i cloud.Image) string {
	var about []string
	if i.KubeMinor != "" {
		about = append(about, "Kubernetes "+i.KubeMinor)
	}
	if i.ReleaseVersion != "" {
		about = append(about, "release "+i.ReleaseVersion)
	} else if i.Name != "" {
		about = append(about, i.Name)
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
	to := cloud.Image{ID: t.ImageID, Name: t.ImageName, KubeMinor: t.KubeMinor, ReleaseVersion: t.ReleaseVersion}
	if older(to, cur) {
		return &DowngradeError{Group: ref, From: cur, To: to, Terms: e.opts.Terms}
	}
	return nil
}

// older says whether a is older than b: by Kubernetes minor, then by the
// AMI's build date (the release version's, "1.37.2-20261115", or the one in
// an EKS AMI's name, "...-1.37-v20261115"; EKS's later patches carry later
// dates); false when either does not say.
func older(a, b cloud.Image) bool {
	am, aerr := minorOf(a.KubeMinor)
	bm, berr := minorOf(b.KubeMinor)
	if aerr != nil || berr != nil {
		return false
	}
	if am != bm {
		return am < bm
	}
	ad, bd := buildDate(a), buildDate(b)
	return ad != "" && bd != "" && ad < bd
}

var (
	releaseDate = regexp.MustCompile(`^\d+\.\d+\.\d+-(\d{8})$`)
	nameDate    = regexp.MustCompile(`-v(\d{8})$`)
)

// buildDate is the image's build date as YYYYMMDD, or "".
func buildDate(i cloud.Image) string {
	if m := releaseDate.FindStringSubmatch(i.ReleaseVersion); m != nil {
		return m[1]
	}
	if m := nameDate.FindStringSubmatch(i.Name); m != nil {
		return m[1]
	}
	return ""
}
