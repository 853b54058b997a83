// Package v1alpha1 is the noderoll.io/v1alpha1 API: the NodeGroupUpgrade
// resource that declares an upgrade of one node group for noderoll's
// controller to carry out, and the NodeGroupUpgradePolicy that keeps a
// cluster's groups current by creating them. Other programs may import
// these types.
//
// +kubebuilder:object:generate=true
// +groupName=noderoll.io
package v1alpha1

// The deep copies and the CRD are generated from these types; a test checks
// that regenerating changes nothing.
//go:generate go tool controller-gen object paths=.
//go:generate go tool controller-gen crd paths=. output:crd:artifacts:config=../../charts/noderoll/crds

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API's group and version.
var GroupVersion = schema.GroupVersion{Group: "noderoll.io", Version: "v1alpha1"}

// AddToScheme adds the API's types to a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &NodeGroupUpgrade{}, &NodeGroupUpgradeList{}, &NodeGroupUpgradePolicy{}, &NodeGroupUpgradePolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
