package engine

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
}

func (e eventer) node(ctx context.Context, node, typ, reason, msg string) {
	now := metav1.NewTime(e.clock.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: node + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Node", Name: node, UID: "", APIVersion: "v1",
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: "noderoll"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "noderoll.io/upgrade", ReportingInstance: "noderoll",
		Action: reason,
	}
	if n, err := e.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
		ev.InvolvedObject.UID = n.UID
	}
	if _, err := e.client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		// An event lost is a log line lost, never a reason to stop an upgrade.
		e.log.Warn("recording an event failed", "node", node, "reason", reason, "err", err)
	}
}
