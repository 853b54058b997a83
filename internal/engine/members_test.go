package engine

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/internal/cloud"
)

func TestMembersOwnNodesByProviderIDNotLabels(t *testing.T) {
	node := func(name, providerID string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	}
	m := NewMembers()
	m.Add([]cloud.Instance{{ID: "i-0aaa"}, {ID: "i-0bbb"}})
	for _, c := range []struct {
		n    *corev1.Node
		want bool
	}{
		{node("plain", "aws:///us-west-2a/i-0aaa", nil), true}, // a Terraform group's node: no labels at all
		{node("labelled-elsewhere", "aws:///us-west-2b/i-0ccc", map[string]string{"eks.amazonaws.com/nodegroup": "ng"}), false},
		{node("no-provider-id", "", nil), false},
		{node("prefix", "aws:///us-west-2a/i-0aaa0", nil), false},
	} {
		if got := m.Owns(c.n); got != c.want {
			t.Errorf("%s: owned %v, want %v", c.n.Name, got, c.want)
		}
	}
	m.Add([]cloud.Instance{{ID: "i-0ccc", ImageID: "ami-new"}}) // launched mid-run
	if !m.Owns(node("new", "aws:///us-west-2b/i-0ccc", nil)) {
		t.Error("an instance added later is not owned")
	}
	if got := m.Image(node("new", "aws:///us-west-2b/i-0ccc", nil)); got != "ami-new" {
		t.Errorf("the new node's image is %q, want ami-new", got)
	}
	if got := m.Image(node("other", "aws:///us-west-2b/i-0ddd", nil)); got != "" {
		t.Errorf("a node not of the group has image %q", got)
	}
}

// EKS's record of a managed group's template version lags only for a group
// on its own template whose Auto Scaling group launches another version
// (what noderoll's own upgrade leaves); --mode=managed then asks EKS to
// record it although every node runs the target.
func TestRecordLagsOnlyForAManagedGroupMovedPastEKSsRecord(t *testing.T) {
	for _, c := range []struct {
		g    cloud.NodeGroup
		want bool
	}{
		{cloud.NodeGroup{Managed: true, TemplateID: "lt-1", TemplateVersion: 2, EKSTemplateID: "lt-1", EKSTemplateVersion: 1}, true},
		{cloud.NodeGroup{Managed: true, TemplateID: "lt-1", TemplateVersion: 2, EKSTemplateID: "lt-1", EKSTemplateVersion: 2}, false},
		{cloud.NodeGroup{Managed: true, TemplateID: "lt-eks", TemplateVersion: 2}, false},                                              // EKS's own template
		{cloud.NodeGroup{Managed: false, TemplateID: "lt-1", TemplateVersion: 2, EKSTemplateID: "lt-1", EKSTemplateVersion: 1}, false}, // self-managed
	} {
		if got := recordLags(c.g); got != c.want {
			t.Errorf("%+v: %v, want %v", c.g, got, c.want)
		}
	}
}
