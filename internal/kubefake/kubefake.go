// Package kubefake gives client-go's fake clientset what unit tests of
// optimistic concurrency need from the API server and the fake lacks:
// resourceVersions, conflicts on stale writes, delete preconditions.
// Real behaviour is proven on the sandbox's API server in test/e2e.
package kubefake

import (
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// WithResourceVersions makes writes of the resources (e.g. "configmaps",
// "leases") behave as on the API server: each write gets a new
// resourceVersion, a create over an existing object is refused, and an
// update or a delete whose resourceVersion is not the stored one is a
// conflict.
func WithResourceVersions(kube *k8sfake.Clientset, resources ...string) {
	rv := 100
	var mu sync.Mutex
	for _, resource := range resources {
		kube.PrependReactor("*", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
			mu.Lock()
			defer mu.Unlock()
			switch a.GetVerb() {
			case "create":
				obj := a.(k8stesting.CreateAction).GetObject().DeepCopyObject()
				m, _ := meta.Accessor(obj)
				if _, err := kube.Tracker().Get(a.GetResource(), m.GetNamespace(), m.GetName()); err == nil {
					return true, nil, apierrors.NewAlreadyExists(a.GetResource().GroupResource(), m.GetName())
				}
				rv++
				m.SetResourceVersion(fmt.Sprint(rv))
				return true, obj, kube.Tracker().Create(a.GetResource(), obj, m.GetNamespace())
			case "update":
				obj := a.(k8stesting.UpdateAction).GetObject().DeepCopyObject()
				m, _ := meta.Accessor(obj)
				cur, err := kube.Tracker().Get(a.GetResource(), m.GetNamespace(), m.GetName())
				if err != nil {
					return true, nil, err
				}
				have, _ := meta.Accessor(cur)
				if m.GetResourceVersion() != have.GetResourceVersion() {
					return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), m.GetName(),
						fmt.Errorf("resourceVersion %q is not %q", m.GetResourceVersion(), have.GetResourceVersion()))
				}
				rv++
				m.SetResourceVersion(fmt.Sprint(rv))
				return true, obj, kube.Tracker().Update(a.GetResource(), obj, m.GetNamespace())
			case "delete":
				d := a.(k8stesting.DeleteAction)
				pre := d.GetDeleteOptions().Preconditions
				if pre == nil || pre.ResourceVersion == nil {
					return false, nil, nil
				}
				cur, err := kube.Tracker().Get(a.GetResource(), d.GetNamespace(), d.GetName())
				if err != nil {
					return true, nil, err
				}
				if have, _ := meta.Accessor(cur); have.GetResourceVersion() != *pre.ResourceVersion {
					return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), d.GetName(),
						fmt.Errorf("precondition resourceVersion %q is not %q", *pre.ResourceVersion, have.GetResourceVersion()))
				}
				return true, nil, kube.Tracker().Delete(a.GetResource(), d.GetNamespace(), d.GetName())
			}
			return false, nil, nil
		})
	}
}
