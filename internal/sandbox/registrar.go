package sandbox

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// KwokRegistrar turns booted instances into kwok-managed Nodes, carrying what
// a kubelet on an EKS node registers with.
type KwokRegistrar struct {
	Client kubernetes.Interface
}

var _ awssim.Registrar = KwokRegistrar{}

func newKwokRegistrar(cfg *rest.Config) (KwokRegistrar, error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return KwokRegistrar{}, fmt.Errorf("building a client for the sandbox cluster: %w", err)
	}
	return KwokRegistrar{Client: c}, nil
}

// Register creates the instance's Node; an existing one is left as it is.
func (r KwokRegistrar) Register(ctx context.Context, n awssim.NodeSpec) error {
	labels := map[string]string{
		"kubernetes.io/hostname":           n.Name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"node.kubernetes.io/instance-type": n.InstanceType,
		"topology.kubernetes.io/zone":      n.AZ,
		"topology.kubernetes.io/region":    n.Region,
		"topology.k8s.aws/zone-id":         "usw2-az" + n.AZ[len(n.AZ)-1:],
		"k8s.io/cloud-provider-aws":        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
		"node.kubernetes.io/lifecycle":     strings.ToLower(strings.ReplaceAll(n.CapacityType, "_", "-")),
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	ip := strings.ReplaceAll(strings.TrimPrefix(strings.Split(n.Name, ".")[0], "ip-"), "-", ".")
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   n.Name,
			Labels: labels,
			Annotations: map[string]string{
				"kwok.x-k8s.io/node":                                     "fake",
				"node.alpha.kubernetes.io/ttl":                           "0",
				"alpha.kubernetes.io/provided-node-ip":                   ip,
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
			},
		},
		Spec: corev1.NodeSpec{ProviderID: n.ProviderID()},
		Status: corev1.NodeStatus{
			Capacity:    m5LargeResources(),
			Allocatable: m5LargeResources(),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ip},
				{Type: corev1.NodeHostName, Address: n.Name},
				{Type: corev1.NodeInternalDNS, Address: n.Name},
			},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: "ec2" + n.InstanceID[2:], SystemUUID: "ec2" + n.InstanceID[2:],
				BootID: n.InstanceID, KernelVersion: "6.12.46-66.121.amzn2023.x86_64",
				OSImage: n.OSImage, ContainerRuntimeVersion: "containerd://2.1.4",
				KubeletVersion: n.KubeletVersion, KubeProxyVersion: n.KubeletVersion,
				OperatingSystem: "linux", Architecture: "amd64",
			},
			Phase: corev1.NodeRunning,
		},
	}
	_, err := r.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Registered before (a retried call), unless another instance holds
		// the name: say so rather than leave this one without a node.
		old, gerr := r.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if gerr == nil && old.Spec.ProviderID != node.Spec.ProviderID {
			return fmt.Errorf("registering node %s: the name is held by the node of %s", n.Name, old.Spec.ProviderID)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", n.Name, err)
	}
	return nil
}

// Deregister removes a terminated instance's Node and whatever pods were
// still bound to it: a terminated machine takes its pods along, and a
// drain that missed a pod must show as lost, not linger as Running.
func (r KwokRegistrar) Deregister(ctx context.Context, name string) error {
	err := r.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	pods, err := r.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String()})
	if err != nil {
		return fmt.Errorf("listing pods of node %s: %w", name, err)
	}
	zero := int64(0)
	for _, p := range pods.Items {
		// By UID: a StatefulSet's pod of the same name may exist elsewhere
		// by now, and must not go with this machine.
		uid := p.UID
		err := r.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsConflict(err) {
			continue // that pod is gone already; the name is another's now
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing pod %s/%s of node %s: %w", p.Namespace, p.Name, name, err)
		}
	}
	return nil
}

func m5LargeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("2"),
		corev1.ResourceMemory:           resource.MustParse("7910Mi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("80Gi"),
	}
}
