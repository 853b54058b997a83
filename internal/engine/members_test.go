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
	m.Add([]cloud.Instance{{ID: "i-0ccc"}}) // launched mid-run
	if !m.Owns(node("new", "aws:///us-west-2b/i-0ccc", nil)) {
		t.Error("an instance added later is not owned")
	}
}
