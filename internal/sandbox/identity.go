package sandbox

import (
	"context"
	"fmt"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// Identity is a ServiceAccount of kube-system, bound to cluster-admin (or
// the roles it names), whose
// requests the API server files under a FlowSchema of the same name: its
// requests are then counted apart in the API server's metrics
// (apiserver_flowcontrol_*{flow_schema=Name}) and held to the priority level
// the schema names, which the sandbox's admin (exempt) is not.
type Identity struct {
	Name          string
	PriorityLevel string // e.g. "workload-high", or one a test made
	// ClusterRole is what the identity is bound to cluster-wide (default
	// cluster-admin); Role, when set, is a Role of kube-system it is bound
	// to there too (noderoll's least privilege is both).
	ClusterRole, Role string
}

// Kubeconfig creates the identity (what exists already is kept) and writes
// a copy of the admin kubeconfig that acts as it, with a token for hours.
func (id Identity) Kubeconfig(ctx context.Context, kube kubernetes.Interface, adminKubeconfig, path string) error {
	ns := "kube-system"
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: id.Name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount %s: %w", id.Name, err)
	}
	clusterRole := id.ClusterRole
	if clusterRole == "" {
		clusterRole = "cluster-admin"
	}
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: id.Name, Namespace: ns}}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: id.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
		Subjects:   subjects,
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s: %w", id.Name, err)
	}
	if id.Role != "" {
		if _, err := kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: id.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: id.Role},
			Subjects:   subjects,
		}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("binding %s to Role %s: %w", id.Name, id.Role, err)
		}
	}
	if _, err := kube.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: id.Name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: id.PriorityLevel},
			MatchingPrecedence:         100,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: ns, Name: id.Name}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
					ClusterScope: true, Namespaces: []string{"*"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating FlowSchema %s: %w", id.Name, err)
	}
	return tokenKubeconfig(ctx, kube, ns, id.Name, adminKubeconfig, path)
}

// tokenKubeconfig writes a copy of the admin kubeconfig that acts as the
// ServiceAccount namespace/name alone, with a token from the TokenRequest
// API, valid for hours.
func tokenKubeconfig(ctx context.Context, kube kubernetes.Interface, namespace, name, adminKubeconfig, path string) error {
	tok, err := kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(6 * 3600))}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("a token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	cfg, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		return err
	}
	cur := cfg.Contexts[cfg.CurrentContext]
	if cur == nil {
		return fmt.Errorf("kubeconfig %s has no current context", adminKubeconfig)
	}
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{name: {Token: tok.Status.Token}}
	cur.AuthInfo = name
	return clientcmd.WriteToFile(*cfg, path)
}
