// Package records keeps an upgrade's progress record where the front end
// that runs it keeps it, and hands it over between them: the CLI keeps it
// in a ConfigMap, the controller in its NodeGroupUpgrade's status. Whoever
// holds the group's lock and finds the record elsewhere takes it over, so a
// run started by one is resumed by the other.
package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
)

// Place is one place a group's record may be kept: a RecordStore that can
// also let go of its record once another place holds it.
type Place interface {
	engine.RecordStore
	// Clear removes the record when it is still as last loaded or saved
	// (engine.ErrRecordChanged otherwise).
	Clear(ctx context.Context) error
	String() string
}

// Keeper finds a group's record wherever a front end keeps it.
type Keeper struct {
	Kube kubernetes.Interface
	// Client writes NodeGroupUpgrades' status; Reader reads them as the
	// API server has them now (a cache could hand over a record older than
	// the one kept). Nil Client: no resource is looked at (no CRD to read).
	Client client.Client
	Reader client.Reader
	// TookOver, when set, is told where a record was taken from.
	TookOver func(from string)
}

// CLI keeps each group's record in its ConfigMap, taking over one a
// NodeGroupUpgrade's status holds.
func (k Keeper) CLI() engine.Records {
	return func(g cloud.NodeGroupRef) engine.RecordStore {
		return &handover{home: engine.NewConfigMapStore(k.Kube, g), k: k, group: g}
	}
}

// Resource keeps the record of group in the status of the NodeGroupUpgrade
// key names, taking over one the ConfigMap or another resource holds;
// other groups' records (read only, to see whether their upgrades go on)
// are found as the CLI finds them.
func (k Keeper) Resource(key client.ObjectKey, group cloud.NodeGroupRef) engine.Records {
	cli := k.CLI()
	return func(g cloud.NodeGroupRef) engine.RecordStore {
		if g != group {
			return cli(g)
		}
		return &handover{home: k.status(key, ""), k: k, group: g}
	}
}

// handover is a RecordStore with a home and the other places the group's
// record may be in. Load reads the newest unfinished record of them all;
// the first Save writes it home and clears it where it was, so the record
// is in one place again (a crash between the two leaves it in two, and the
// next Load still takes the newest).
type handover struct {
	home  Place
	k     Keeper
	group cloud.NodeGroupRef
	// from are the other places that held an unfinished record at Load,
	// cleared on the first Save; took the one whose record Load returned.
	from []Place
	took Place
}

func (h *handover) Load(ctx context.Context) (*engine.Record, error) {
	h.from, h.took = nil, nil
	rec, err := h.home.Load(ctx)
	if err != nil {
		return nil, err
	}
	others, err := h.others(ctx)
	if err != nil {
		return nil, err
	}
	best := rec
	for _, p := range others {
		r, err := p.Load(ctx)
		if err != nil {
			return nil, err
		}
		if !r.Active() {
			continue
		}
		h.from = append(h.from, p)
		if !best.Active() || r.Updated.After(best.Updated) {
			best, h.took = r, p
		}
	}
	return best, nil
}

func (h *handover) Save(ctx context.Context, r *engine.Record) error {
	if err := h.home.Save(ctx, r); err != nil {
		return err
	}
	for len(h.from) > 0 {
		if err := h.from[0].Clear(ctx); err != nil {
			return fmt.Errorf("the record of %s is now in %s, but %s still holds a copy of it (the next run takes the newer): %w", h.group, h.home, h.from[0], err)
		}
		if h.from[0] == h.took && h.k.TookOver != nil {
			h.k.TookOver(h.took.String())
		}
		h.from = h.from[1:]
	}
	h.took = nil
	return nil
}

// others are the places other than home that may hold the group's record.
func (h *handover) others(ctx context.Context) ([]Place, error) {
	var out []Place
	if _, ok := h.home.(*engine.ConfigMapStore); !ok {
		out = append(out, engine.NewConfigMapStore(h.k.Kube, h.group))
	}
	if h.k.Client == nil {
		return out, nil
	}
	var list v1alpha1.NodeGroupUpgradeList
	if err := h.k.Reader.List(ctx, &list); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return out, nil // no NodeGroupUpgrades in this cluster: no controller keeps records here
		}
		return nil, fmt.Errorf("looking for a NodeGroupUpgrade that holds the record of %s (list nodegroupupgrades.noderoll.io, see noderoll permissions): %w", h.group, err)
	}
	home, _ := h.home.(*statusPlace)
	taker := "a noderoll CLI run"
	if home != nil {
		taker = home.String()
	}
	for i := range list.Items {
		u := &list.Items[i]
		key := client.ObjectKeyFromObject(u)
		if home != nil && home.key == key {
			continue
		}
		rec, err := Decode(u)
		if err != nil || rec == nil || rec.Cluster != h.group.Cluster || rec.Nodegroup != h.group.Name {
			continue // an unreadable record is its own resource's to report
		}
		out = append(out, h.k.status(key, taker))
	}
	return out, nil
}

// Decode is the record a NodeGroupUpgrade's status holds, nil when none.
func Decode(u *v1alpha1.NodeGroupUpgrade) (*engine.Record, error) {
	if u.Status.Record == nil || len(u.Status.Record.Data.Raw) == 0 {
		return nil, nil
	}
	var r engine.Record
	if err := json.Unmarshal(u.Status.Record.Data.Raw, &r); err != nil {
		return nil, fmt.Errorf("the upgrade record in NodeGroupUpgrade %s's status is not readable: %w", u.Name, err)
	}
	return &r, nil
}

func (k Keeper) status(key client.ObjectKey, taker string) *statusPlace {
	return &statusPlace{c: k.Client, r: k.Reader, key: key, taker: taker}
}

// statusPlace keeps the record in a NodeGroupUpgrade's status.record,
// under the record's own version: every write reads the resource as it is
// now and refuses to go on when the record is not the version this place
// last read or wrote.
type statusPlace struct {
	c       client.Client
	r       client.Reader
	key     client.ObjectKey
	version int64 // 0: no record
	// taker is who would take the record from here, said on the resource
	// when it does.
	taker string
}

func (s *statusPlace) String() string {
	if s.key.Namespace == "" { // the resource is cluster-scoped
		return "NodeGroupUpgrade " + s.key.Name
	}
	return "NodeGroupUpgrade " + s.key.String()
}

func (s *statusPlace) Load(ctx context.Context) (*engine.Record, error) {
	var u v1alpha1.NodeGroupUpgrade
	if err := s.r.Get(ctx, s.key, &u); err != nil {
		if apierrors.IsNotFound(err) {
			s.version = 0
			return nil, nil
		}
		return nil, fmt.Errorf("reading the upgrade record in %s: %w", s, err)
	}
	rec, err := Decode(&u)
	if err != nil {
		return nil, err
	}
	s.version = 0
	if u.Status.Record != nil {
		s.version = u.Status.Record.Version
	}
	return rec, nil
}

func (s *statusPlace) Save(ctx context.Context, r *engine.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(st *v1alpha1.NodeGroupUpgradeStatus) {
		st.Record = &v1alpha1.UpgradeRecord{Version: s.version + 1, Data: runtime.RawExtension{Raw: b}}
	})
	if err != nil {
		return fmt.Errorf("saving the upgrade record in %s: %w", s, err)
	}
	s.version++
	return nil
}

// Clear gives the record up to another front end, saying so on the
// resource: it waits until that run ends (its controller then finds the
// group as the other run left it).
func (s *statusPlace) Clear(ctx context.Context) error {
	if s.version == 0 {
		return nil
	}
	err := s.write(ctx, func(st *v1alpha1.NodeGroupUpgradeStatus) {
		st.Record = nil
		st.Phase = v1alpha1.PhasePending
		st.Message = "handed over: " + s.taker + " holds the group's lock and took this upgrade's record over; the controller goes on with this resource once that run ends"
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse,
			Reason: "HandedOver", Message: st.Message, ObservedGeneration: st.ObservedGeneration})
	})
	if err != nil {
		return fmt.Errorf("handing over the upgrade record in %s: %w", s, err)
	}
	s.version = 0
	return nil
}

// errGone says the resource was deleted under the run.
var errGone = errors.New("the NodeGroupUpgrade is gone")

// write changes the status of the resource as it is now, when its record
// is still the version this place knows.
func (s *statusPlace) write(ctx context.Context, change func(*v1alpha1.NodeGroupUpgradeStatus)) error {
	return retry.OnError(retry.DefaultRetry, apierrors.IsConflict, func() error {
		var u v1alpha1.NodeGroupUpgrade
		if err := s.r.Get(ctx, s.key, &u); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%w: %w", errGone, engine.ErrRecordChanged)
			}
			return err
		}
		var have int64
		if u.Status.Record != nil {
			have = u.Status.Record.Version
		}
		if have != s.version {
			return fmt.Errorf("record version %d, read at %d: %w", have, s.version, engine.ErrRecordChanged)
		}
		change(&u.Status)
		return s.c.Status().Update(ctx, &u)
	})
}

// HandBack puts the unfinished record a NodeGroupUpgrade's status holds
// back in the group's ConfigMap, where the CLI (or a new resource) resumes
// it: what a deleted resource leaves. It does nothing when the record is
// finished, or when the ConfigMap holds a newer unfinished one.
func HandBack(ctx context.Context, kube kubernetes.Interface, u *v1alpha1.NodeGroupUpgrade) (*engine.Record, error) {
	rec, err := Decode(u)
	if err != nil || !rec.Active() {
		return nil, err
	}
	cm := engine.NewConfigMapStore(kube, cloud.NodeGroupRef{Cluster: rec.Cluster, Name: rec.Nodegroup})
	have, err := cm.Load(ctx)
	if err != nil {
		return nil, err
	}
	if have.Active() && !have.Updated.Before(rec.Updated) {
		return nil, nil
	}
	if err := cm.Save(ctx, rec); err != nil {
		return nil, fmt.Errorf("handing the upgrade record of NodeGroupUpgrade %s back to %s: %w", u.Name, cm, err)
	}
	return rec, nil
}
