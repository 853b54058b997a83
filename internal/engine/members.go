package engine

import (
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Members says which Nodes belong to a node group, one definition for the
// engine and every front end: a Node belongs when its spec.providerID names
// an instance the group held at some point of the run. Labels are no test:
// a self-managed group not made by eksctl labels its nodes with nothing.
// The engine adds the group's instances whenever it describes the group,
// so instances launched mid-run join, and instances terminated stay members
// until their Nodes are gone.
type Members struct {
	mu  sync.RWMutex
	ids map[string]string // instance id -> its AMI
}

// NewMembers returns an empty membership.
func NewMembers() *Members { return &Members{ids: map[string]string{}} }

// Add records instances of the group.
func (m *Members) Add(instances []cloud.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, i := range instances {
		m.ids[i.ID] = i.ImageID
	}
}

// Owns reports whether a Node runs on an instance of the group.
func (m *Members) Owns(n *corev1.Node) bool {
	id := cloud.InstanceIDOf(n.Spec.ProviderID)
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.ids[id]
	return id != "" && ok
}

// Image is the AMI of the group's instance a Node runs on ("" when the
// Node is not the group's).
func (m *Members) Image(n *corev1.Node) string {
	id := cloud.InstanceIDOf(n.Spec.ProviderID)
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ids[id]
}
