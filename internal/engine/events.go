package engine

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"
)

// eventer records Kubernetes Events on nodes, so `kubectl describe node` and
// `kubectl get events` tell the upgrade's story. Events are written
// synchronously: a CLI run ends right after its last step, and an
// asynchronous recorder could drop what it had queued.
type eventer struct {
	client kubernetes.Interface
	clock  clock.Clock
	log    *slog.Logger
	nodes  listersv1.NodeLister // nil: nodes are asked for
}

// node records an event on a node as the caches know it (no extra request).
func (e eventer) node(ctx context.Context, n *corev1.Node, typ, reason, msg string) {
	e.record(ctx, n.Name, n.UID, typ, reason, msg)
}

// nodeNamed records an event on a node known by name only.
func (e eventer) nodeNamed(ctx context.Context, node, typ, reason, msg string) {
	var uid types.UID
	if e.nodes != nil {
		if n, err := e.nodes.Get(node); err == nil {
			uid = n.UID
		}
	} else if n, err := e.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
		uid = n.UID
	}
	e.record(ctx, node, uid, typ, reason, msg)
}

func (e eventer) record(ctx context.Context, node string, uid types.UID, typ, reason, msg string) {
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-3] + "..."
	}
	now := metav1.NewTime(e.clock.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: node + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Node", Name: node, UID: uid, APIVersion: "v1",
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: "noderoll"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "noderoll.io/upgrade", ReportingInstance: "noderoll",
		Action: reason,
	}
	if _, err := e.client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		// An event lost is a log line lost, never a reason to stop an upgrade.
		e.log.Warn("recording an event failed", "node", node, "reason", reason, "err", err)
	}
}

// maxEventMessage keeps an event readable in `kubectl describe` and within
// what event sinks accept.
const maxEventMessage = 1024
