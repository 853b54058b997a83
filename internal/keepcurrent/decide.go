package keepcurrent

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/clusterplan"
)

// Release is an AMI release as the policy weighs it.
type Release struct {
	ImageID, ImageName string
	Version            string // EKS's release version, "1.37.2-20261201" ("" when the AMI has none)
	Published          time.Time
}

// String names the release as people read it.
func (r Release) String() string {
	switch {
	case r.Version != "":
		return r.Version
	case r.ImageName != "":
		return r.ImageName
	}
	return r.ImageID
}

// Group is one node group the policy keeps, as the cloud says now.
type Group struct {
	Name string
	// Current is what the group runs; Newest the newest recommended
	// release of its own family at the policy's minor.
	Current, Newest Release
	// Err says why the group could not be read ("" when it was).
	Err string
	// Unsettled says why the group is not to be upgraded now although it
	// may be behind (being created or resized): it is weighed once settled.
	Unsettled string
	// EKSUpdates: a managed node group whose launch template EKS
	// generated is updated by EKS itself (a NodeGroupUpgrade of mode
	// Managed, to the release), which cannot be aborted.
	EKSUpdates bool
}

// Upgrade is a NodeGroupUpgrade the policy made in the rollout under way.
type Upgrade struct {
	Name, Phase, Message string
	// Action is its spec.action ("" none).
	Action string
}

// ended says whether the upgrade ran to an end.
func (u Upgrade) ended() bool {
	switch u.Phase {
	case v1alpha1.PhaseComplete, v1alpha1.PhaseFailed, v1alpha1.PhaseAborted, v1alpha1.PhaseRolledBack:
		return true
	}
	return false
}

// Input is everything a decision stands on.
type Input struct {
	Now  time.Time
	Spec Spec
	// Minor is the Kubernetes minor followed now.
	Minor string
	// Groups are the groups kept, by name.
	Groups []Group
	// Rollout is the rollout under way, as the status keeps it (nil none).
	Rollout *v1alpha1.PolicyRollout
	// Upgrades are the rollout's NodeGroupUpgrades by group, and TakeBacks
	// the ones onFailure: Abort made to take a group back.
	Upgrades, TakeBacks map[string]Upgrade
	// Regressions are what the health watch saw on the wave in its soak
	// (see Soaking).
	Regressions []string
	// Resume: the user asked a halted rollout to go on.
	Resume bool
}

// Create asks for a NodeGroupUpgrade of a group to an AMI.
type Create struct {
	Group, ImageID, Release string
	// TakeBack: back to the AMI the group ran before the rollout.
	TakeBack bool
	// EKS: EKS updates the group itself, to Release.
	EKS bool
}

// Event is news for the policy's Events.
type Event struct {
	Warning         bool
	Reason, Message string
	// OnCreate: news only if the upgrades it announces are made now (an
	// earlier look may have made them, and said so).
	OnCreate bool
}

// Output is what the controller is to do and write.
type Output struct {
	Rollout *v1alpha1.PolicyRollout // as it is to be kept (nil: none under way)
	Ended   *v1alpha1.PolicyRolloutEnd
	Create  []Create
	Abort   []string // NodeGroupUpgrades whose spec.action is to be Abort
	Delete  []string // NodeGroupUpgrades to delete (a resumed rollout makes them again)

	State, Waiting, Message string
	NextWindow              time.Time
	Groups                  []v1alpha1.PolicyGroupStatus
	UpToDate                int
	// Requeue is when to look again at the latest (0: at the next poll).
	Requeue time.Duration
	Events  []Event
}

// Soaking names the groups of the wave a rollout soaks now, whose health
// the controller is to read into Input.Regressions (nil when none soaks).
func Soaking(r *v1alpha1.PolicyRollout, upgrades map[string]Upgrade) []string {
	if r == nil || r.Halted != nil || int(r.Wave) >= len(r.Waves) {
		return nil
	}
	groups := r.Waves[r.Wave].Groups
	for _, g := range groups {
		if u, ok := upgrades[g]; !ok || u.Phase != v1alpha1.PhaseComplete {
			return nil
		}
	}
	return groups
}

// candidate is what a group not in a rollout would do.
type candidate struct {
	status  v1alpha1.PolicyGroupStatus
	behind  bool          // eligible: behind a release it may take now
	ripens  time.Duration // a release too young becomes eligible after this
	waiting string        // ReleaseAge when too young
}

// weigh judges one group against its newest release.
func weigh(in Input, g Group) candidate {
	st := v1alpha1.PolicyGroupStatus{Name: g.Name, CurrentRelease: g.Current.String(), TargetRelease: g.Newest.String()}
	switch {
	case g.Err != "":
		st.State, st.Message = v1alpha1.PolicyWaiting, g.Err
		return candidate{status: st}
	case g.Unsettled != "" && g.Current.ImageID != g.Newest.ImageID:
		st.State, st.Message = v1alpha1.PolicyWaiting, g.Unsettled
		return candidate{status: st}
	case g.Newest.ImageID == "" || g.Current.ImageID == g.Newest.ImageID:
		st.State, st.TargetRelease = v1alpha1.PolicyUpToDate, ""
		st.Message = "on the newest recommended release"
		return candidate{status: st}
	case !g.Current.Published.IsZero() && !g.Newest.Published.IsZero() && g.Current.Published.After(g.Newest.Published):
		st.State, st.TargetRelease = v1alpha1.PolicyUpToDate, ""
		st.Message = fmt.Sprintf("runs a newer AMI than the recommended %s; left as it is", g.Newest)
		return candidate{status: st}
	case g.Newest.Version != "" && slices.Contains(in.Spec.Skip, g.Newest.Version):
		st.State, st.TargetRelease = v1alpha1.PolicyUpToDate, ""
		st.Message = fmt.Sprintf("release %s is skipped (spec.skipReleases); waiting for the next one", g.Newest)
		return candidate{status: st}
	}
	if !g.Newest.Published.IsZero() {
		st.BehindSince = &metav1.Time{Time: g.Newest.Published}
	}
	if age := in.Now.Sub(g.Newest.Published); !g.Newest.Published.IsZero() && age < in.Spec.MinReleaseAge {
		ripe := g.Newest.Published.Add(in.Spec.MinReleaseAge)
		st.State = v1alpha1.PolicyWaiting
		published := fmt.Sprintf("was published %s ago", age.Round(time.Second))
		if age < 0 {
			// Dated after this clock's now: a clock behind, or a release
			// published ahead of its date (the sandbox's --release).
			published = fmt.Sprintf("is dated %s, %s from now", g.Newest.Published.UTC().Format(time.RFC3339), (-age).Round(time.Second))
		}
		st.Message = fmt.Sprintf("release %s %s; taken from %s (spec.minReleaseAge %s)",
			g.Newest, published, ripe.UTC().Format(time.RFC3339), in.Spec.MinReleaseAge)
		return candidate{status: st, ripens: ripe.Sub(in.Now), waiting: WaitingReleaseAge}
	}
	st.State, st.Message = v1alpha1.PolicyWaiting, fmt.Sprintf("behind release %s", g.Newest)
	return candidate{status: st, behind: true}
}

// Decide says what the policy does now.
func Decide(in Input) Output {
	var out Output
	cands := map[string]candidate{}
	var all, behind []string
	for _, g := range in.Groups {
		c := weigh(in, g)
		cands[g.Name] = c
		all = append(all, g.Name)
		if c.behind {
			behind = append(behind, g.Name)
		}
		if c.ripens > 0 && (out.Requeue == 0 || c.ripens < out.Requeue) {
			out.Requeue = c.ripens
		}
	}
	closed, closedMsg := in.Spec.Calendar.Why(in.Now)
	if in.Rollout == nil && len(behind) > 0 && !in.Spec.Paused && closed == "" {
		r, err := begin(in, all, behind)
		if err != nil {
			out.State, out.Message = v1alpha1.PolicyInvalid, err.Error()
			out.Groups = statuses(cands, nil)
			return out
		}
		in.Rollout = r
		var order []string
		for k, w := range r.Waves {
			order = append(order, fmt.Sprintf("%s: %s", waveName(r, k), strings.Join(w.Groups, ", ")))
		}
		out.Events = append(out.Events, Event{Reason: "RolloutStarted", Message: fmt.Sprintf("rolling out Kubernetes %s's newest releases to %s, targets frozen now: %s",
			r.KubernetesVersion, groups(len(r.Targets)), strings.Join(order, "; "))})
	}
	if in.Rollout != nil {
		out.Rollout = in.Rollout.DeepCopy()
		roll(in, &out, closed, closedMsg)
	}
	// Groups outside the rollout are weighed against their newest release.
	rolled := map[string]v1alpha1.PolicyGroupStatus{}
	for _, g := range out.Groups {
		rolled[g.Name] = g
	}
	out.Groups = statuses(cands, rolled)
	for _, g := range out.Groups {
		if g.State == v1alpha1.PolicyUpToDate {
			out.UpToDate++
		}
	}
	if out.State == "" {
		summarize(in, &out, cands, behind, closed, closedMsg)
	}
	if out.State == v1alpha1.PolicyWaiting && (out.Waiting == WaitingMaintenanceWindow || out.Waiting == WaitingExclusion) {
		out.NextWindow = in.Spec.Calendar.Next(in.Now)
		if !out.NextWindow.IsZero() {
			out.Message += fmt.Sprintf("; the next start is possible at %s", out.NextWindow.UTC().Format(time.RFC3339))
		}
		if wait := out.NextWindow.Sub(in.Now); wait > 0 && (out.Requeue == 0 || wait < out.Requeue) {
			out.Requeue = wait
		}
	}
	return out
}

// summarize says what a policy with no rollout moving waits for.
func summarize(in Input, out *Output, cands map[string]candidate, behind []string, closed, closedMsg string) {
	young := 0
	var settling []string
	for name, c := range cands {
		switch {
		case c.waiting == WaitingReleaseAge:
			young++
		case !c.behind && c.status.State == v1alpha1.PolicyWaiting:
			settling = append(settling, name+": "+c.status.Message)
		}
	}
	sort.Strings(settling)
	switch {
	case in.Spec.Paused && (len(behind) > 0 || young > 0):
		out.State, out.Waiting = v1alpha1.PolicyPaused, WaitingPaused
		out.Message = fmt.Sprintf("paused by spec.paused with %s behind; nothing new starts until it is false", groups(len(behind)+young))
	case in.Spec.Paused:
		out.State, out.Message = v1alpha1.PolicyPaused, "paused by spec.paused; every group is on its newest acceptable release"
	case len(behind) > 0 && closed != "":
		out.State, out.Waiting = v1alpha1.PolicyWaiting, closed
		out.Message = fmt.Sprintf("%s behind (%s); %s, so none starts", groups(len(behind)), strings.Join(behind, ", "), closedMsg)
	case len(settling) > 0 && young == 0:
		out.State = v1alpha1.PolicyWaiting
		out.Message = fmt.Sprintf("waiting on %s: %s", groups(len(settling)), strings.Join(settling, "; "))
	case young > 0:
		out.State, out.Waiting = v1alpha1.PolicyWaiting, WaitingReleaseAge
		out.Message = fmt.Sprintf("%s behind a release younger than spec.minReleaseAge %s; each group's message says when it is taken", groups(young), in.Spec.MinReleaseAge)
	default:
		out.State = v1alpha1.PolicyUpToDate
		out.Message = fmt.Sprintf("%s on the newest acceptable release of Kubernetes %s", map[bool]string{true: "the group", false: "all " + groups(len(cands))}[len(cands) == 1], in.Minor)
	}
}

// begin freezes a new rollout's targets and order.
func begin(in Input, all, behind []string) (*v1alpha1.PolicyRollout, error) {
	waves, err := clusterplan.Waves(all, behind, in.Spec.Canary, in.Spec.MaxConcurrent)
	if err != nil {
		return nil, fmt.Errorf("spec.rollout: %w", err)
	}
	// Whole seconds: the status keeps no finer, and the rollout's
	// NodeGroupUpgrades are named after its start as kept.
	r := &v1alpha1.PolicyRollout{Started: metav1.Time{Time: in.Now.Truncate(time.Second)}, KubernetesVersion: in.Minor}
	for _, g := range in.Groups {
		if slices.Contains(behind, g.Name) {
			r.Targets = append(r.Targets, v1alpha1.RolloutTarget{Group: g.Name, ImageID: g.Newest.ImageID, ImageName: g.Newest.ImageName,
				Release: g.Newest.String(), FromImageID: g.Current.ImageID, FromRelease: g.Current.Version, EKSUpdates: g.EKSUpdates})
		}
	}
	for _, w := range waves {
		r.Waves = append(r.Waves, v1alpha1.RolloutWave{Canary: w.Canary, Groups: w.Groups})
	}
	return r, nil
}

// roll moves the rollout under way on by one step.
func roll(in Input, out *Output, closed, closedMsg string) {
	r := out.Rollout
	if r.Halted != nil && in.Resume {
		for _, g := range r.Halted.Groups {
			for _, m := range []map[string]Upgrade{in.Upgrades, in.TakeBacks} {
				if u, ok := m[g]; ok {
					out.Delete = append(out.Delete, u.Name)
				}
			}
		}
		out.Events = append(out.Events, Event{Reason: "Resumed", Message: fmt.Sprintf("the halt on %s was cleared; %s goes on from where it stopped", strings.Join(r.Halted.Groups, ", "), waveName(r, int(r.Wave)))})
		r.Halted, r.SoakStarted = nil, nil
		out.State, out.Message, out.Requeue = v1alpha1.PolicyUpgrading, "resuming", time.Second
		out.Groups = rolloutStatuses(in, r)
		return
	}
	if r.Halted != nil {
		halted(in, out)
		return
	}
	k := int(r.Wave)
	w := r.Waves[k]
	var failed, running, waiting []string
	for _, g := range w.Groups {
		u, ok := in.Upgrades[g]
		switch {
		case !ok:
			waiting = append(waiting, g)
		case u.Phase == v1alpha1.PhaseFailed || u.Phase == v1alpha1.PhaseAborted || u.Phase == v1alpha1.PhaseRolledBack:
			failed = append(failed, g)
		case u.Phase != v1alpha1.PhaseComplete:
			running = append(running, g)
		}
	}
	if len(waiting) > 0 && !in.Spec.Paused && closed == "" {
		for _, g := range waiting {
			t := target(r, g)
			out.Create = append(out.Create, Create{Group: g, ImageID: t.ImageID, Release: t.Release, EKS: t.EKSUpdates})
		}
		out.Events = append(out.Events, Event{Reason: "WaveStarted", OnCreate: true, Message: fmt.Sprintf("%s: upgrading %s", waveName(r, k), strings.Join(waiting, ", "))})
		running, waiting = append(running, waiting...), nil
	}
	switch {
	case len(failed) > 0:
		var why []string
		for _, g := range failed {
			u := in.Upgrades[g]
			why = append(why, fmt.Sprintf("%s: NodeGroupUpgrade %s ended %s: %s", g, u.Name, u.Phase, u.Message))
		}
		halt(in, out, failed, "UpgradeFailed", strings.Join(why, "; "))
	case len(running) > 0:
		out.State = v1alpha1.PolicyUpgrading
		out.Message = fmt.Sprintf("%s: upgrading %s", waveName(r, k), strings.Join(running, ", "))
		if in.Spec.Paused {
			out.State, out.Waiting = v1alpha1.PolicyPaused, WaitingPaused
			out.Message += "; paused by spec.paused, so nothing new starts after them"
		}
	case len(waiting) > 0:
		out.State = v1alpha1.PolicyWaiting
		if in.Spec.Paused {
			out.State, out.Waiting = v1alpha1.PolicyPaused, WaitingPaused
			out.Message = fmt.Sprintf("%s (%s) waits: paused by spec.paused", waveName(r, k), strings.Join(waiting, ", "))
		} else {
			out.Waiting = closed
			out.Message = fmt.Sprintf("%s (%s) waits: %s", waveName(r, k), strings.Join(waiting, ", "), closedMsg)
		}
	default:
		soak(in, out)
	}
	if out.Rollout != nil {
		out.Groups = rolloutStatuses(in, out.Rollout)
	}
}

// soak watches a wave whose upgrades all completed, then moves on.
func soak(in Input, out *Output) {
	r := out.Rollout
	k := int(r.Wave)
	w := r.Waves[k]
	if in.Spec.Soak > 0 {
		if r.SoakStarted == nil {
			r.SoakStarted = &metav1.Time{Time: in.Now}
			out.Events = append(out.Events, Event{Reason: "Soaking", Message: fmt.Sprintf("%s (%s) upgraded; soaking %s, watching their nodes and the pods on them", waveName(r, k), strings.Join(w.Groups, ", "), in.Spec.Soak)})
		}
		if len(in.Regressions) > 0 {
			halt(in, out, w.Groups, "Regression", strings.Join(in.Regressions, "; "))
			return
		}
		if left := r.SoakStarted.Add(in.Spec.Soak).Sub(in.Now); left > 0 {
			out.State, out.Waiting = v1alpha1.PolicySoaking, WaitingSoak
			out.Message = fmt.Sprintf("%s (%s) soaking, %s left", waveName(r, k), strings.Join(w.Groups, ", "), left.Round(time.Second))
			out.Requeue = min(left, soakLook)
			return
		}
	}
	out.Events = append(out.Events, Event{Reason: "WaveDone", Message: fmt.Sprintf("%s done: %s on the target%s", waveName(r, k), strings.Join(w.Groups, ", "),
		map[bool]string{true: ", healthy through the soak", false: ""}[in.Spec.Soak > 0])})
	r.Wave++
	r.SoakStarted = nil
	out.Requeue = time.Second
	if int(r.Wave) < len(r.Waves) {
		out.State, out.Message = v1alpha1.PolicyUpgrading, fmt.Sprintf("%s done; %s next", waveName(r, k), waveName(r, int(r.Wave)))
		return
	}
	end := &v1alpha1.PolicyRolloutEnd{Started: r.Started, Finished: metav1.Time{Time: in.Now}, Outcome: "Completed"}
	for _, t := range r.Targets {
		end.Groups = append(end.Groups, t.Group)
		if !slices.Contains(end.Releases, t.Release) {
			end.Releases = append(end.Releases, t.Release)
		}
	}
	out.Ended = end
	out.Events = append(out.Events, Event{Reason: "RolloutCompleted", Message: fmt.Sprintf("%s on %s", strings.Join(end.Groups, ", "), strings.Join(end.Releases, ", "))})
	// Its groups as the rollout left them (what they run is read again
	// on the next look, a second from now).
	out.Groups = rolloutStatuses(in, r)
	out.State, out.Message = v1alpha1.PolicyUpgrading, fmt.Sprintf("the rollout completed: %s on %s; looking at the groups again", strings.Join(end.Groups, ", "), strings.Join(end.Releases, ", "))
	out.Rollout = nil
}

// soakLook is how often a soak looks at the wave's health.
const soakLook = 5 * time.Second

// halt stops the rollout on groups that failed or regressed; with
// onFailure: Abort they are taken back.
func halt(in Input, out *Output, groups []string, reason, msg string) {
	r := out.Rollout
	r.Halted = &v1alpha1.PolicyHalt{At: metav1.Time{Time: in.Now}, Groups: groups, Reason: reason, Message: msg, TakenBack: in.Spec.Abort}
	out.Events = append(out.Events, Event{Warning: true, Reason: "Halted", Message: fmt.Sprintf("%s halted on %s: %s%s", waveName(r, int(r.Wave)), strings.Join(groups, ", "), msg,
		map[bool]string{true: "; taking them back (spec.onFailure Abort)", false: ""}[in.Spec.Abort])})
	halted(in, out)
}

// halted writes the state of a halted rollout.
func halted(in Input, out *Output) {
	r := out.Rollout
	h := r.Halted
	// Taking back is asked for on every look until it is under way: a
	// controller that stopped between the halt and its effects asks again.
	if h.TakenBack {
		for _, g := range h.Groups {
			u, ok := in.Upgrades[g]
			_, back := in.TakeBacks[g]
			t := target(r, g)
			switch {
			case t.EKSUpdates:
				// EKS's own update can be neither aborted nor downgraded:
				// the group stays as EKS left it (the message says so).
			case ok && u.Phase == v1alpha1.PhaseFailed && u.Action != "Abort":
				out.Abort = append(out.Abort, u.Name) // the engine turns the unfinished upgrade around
			case ok && u.Phase == v1alpha1.PhaseComplete && !back:
				out.Create = append(out.Create, Create{Group: g, ImageID: t.FromImageID, Release: orID(t.FromRelease, t.FromImageID), TakeBack: true})
			}
		}
	}
	out.State, out.Waiting = v1alpha1.PolicyHalted, WaitingHalted
	what := map[string]string{"UpgradeFailed": "an upgrade failed", "Regression": "a regression in the soak"}[h.Reason]
	out.Message = fmt.Sprintf("halted since %s on %s (%s): %s. No other group starts. %sOnce fixed, resume with: kubectl annotate nodegroupupgradepolicy NAME %s=now",
		h.At.UTC().Format(time.RFC3339), strings.Join(h.Groups, ", "), what, strings.TrimRight(h.Message, ". "),
		tookBack(r, h), v1alpha1.ResumeAnnotation)
	out.Groups = rolloutStatuses(in, r)
}

// tookBack says what onFailure: Abort does for the halted groups.
func tookBack(r *v1alpha1.PolicyRollout, h *v1alpha1.PolicyHalt) string {
	if !h.TakenBack {
		return ""
	}
	var eks []string
	for _, g := range h.Groups {
		if target(r, g).EKSUpdates {
			eks = append(eks, g)
		}
	}
	if len(eks) == 0 {
		return "The groups are being taken back to the AMIs they ran before (spec.onFailure Abort). "
	}
	return fmt.Sprintf("The groups are being taken back to the AMIs they ran before (spec.onFailure Abort), but for %s: EKS updates it itself, and its update can be neither aborted nor downgraded. ", strings.Join(eks, ", "))
}

// target is a group's frozen target in the rollout.
func target(r *v1alpha1.PolicyRollout, group string) v1alpha1.RolloutTarget {
	for _, t := range r.Targets {
		if t.Group == group {
			return t
		}
	}
	return v1alpha1.RolloutTarget{Group: group}
}

// rolloutStatuses are the rollout's groups as they stand in it.
func rolloutStatuses(in Input, r *v1alpha1.PolicyRollout) []v1alpha1.PolicyGroupStatus {
	var out []v1alpha1.PolicyGroupStatus
	for k, w := range r.Waves {
		for _, g := range w.Groups {
			t := target(r, g)
			st := v1alpha1.PolicyGroupStatus{Name: g, TargetRelease: t.Release}
			for _, grp := range in.Groups {
				if grp.Name == g {
					st.CurrentRelease = grp.Current.String()
					if !grp.Newest.Published.IsZero() {
						st.BehindSince = &metav1.Time{Time: grp.Newest.Published}
					}
				}
			}
			u, made := in.Upgrades[g]
			st.NodeGroupUpgrade = u.Name
			switch {
			case r.Halted != nil && slices.Contains(r.Halted.Groups, g):
				st.State, st.Message = v1alpha1.PolicyHalted, r.Halted.Message
				if b, ok := in.TakeBacks[g]; ok {
					st.Message = fmt.Sprintf("taken back by NodeGroupUpgrade %s (%s)", b.Name, strings.ToLower(orPending(b.Phase)))
				}
			case k < int(r.Wave):
				st.State, st.Message, st.BehindSince = v1alpha1.PolicyUpToDate, "upgraded in this rollout", nil
			case k > int(r.Wave) || !made:
				st.State, st.Message = v1alpha1.PolicyWaiting, fmt.Sprintf("in %s of this rollout", waveName(r, k))
			case u.Phase == v1alpha1.PhaseComplete && r.SoakStarted != nil:
				st.State, st.Message = v1alpha1.PolicySoaking, "upgraded; soaking"
			case u.Phase == v1alpha1.PhaseComplete:
				st.State, st.Message = v1alpha1.PolicyUpgrading, "upgraded; its soak begins once the rest of its wave is"
			default:
				st.State, st.Message = v1alpha1.PolicyUpgrading, fmt.Sprintf("%s: %s", orPending(u.Phase), u.Message)
			}
			out = append(out, st)
		}
	}
	return out
}

// groups is "1 group", "3 groups".
func groups(n int) string {
	if n == 1 {
		return "1 group"
	}
	return fmt.Sprintf("%d groups", n)
}

func orID(release, id string) string { // a release, or the AMI where it has none
	if release != "" {
		return release
	}
	return id
}

func orPending(phase string) string {
	if phase == "" {
		return v1alpha1.PhasePending
	}
	return phase
}

// statuses are every group's: the rollout's where it has them, else the
// group weighed alone.
func statuses(cands map[string]candidate, rolled map[string]v1alpha1.PolicyGroupStatus) []v1alpha1.PolicyGroupStatus {
	var out []v1alpha1.PolicyGroupStatus
	for name, c := range cands {
		if st, ok := rolled[name]; ok {
			out = append(out, st)
			continue
		}
		st := c.status
		if len(rolled) > 0 && c.behind {
			st.Message += "; it waits for the rollout under way to end"
		}
		out = append(out, st)
	}
	for name, st := range rolled {
		if _, ok := cands[name]; !ok {
			out = append(out, st) // in the rollout, gone from the cloud's list
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// waveName is "the canary", "wave 1", ...
func waveName(r *v1alpha1.PolicyRollout, k int) string {
	if k >= len(r.Waves) {
		return "the rollout"
	}
	if r.Waves[k].Canary {
		return "the canary"
	}
	if len(r.Waves) > 0 && r.Waves[0].Canary {
		return fmt.Sprintf("wave %d", k)
	}
	return fmt.Sprintf("wave %d", k+1)
}
