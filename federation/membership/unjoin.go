package membership

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aboutv1alpha1 "github.com/causeway-mesh/causeway/apis/about/v1alpha1"
	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// ErrNotMember is matched (errors.Is) by Unjoin's error when neither the hub
// nor the member holds anything of the named membership.
var ErrNotMember = errors.New("not a member cluster")

// notMemberError says that no member cluster has the name.
type notMemberError string

func (e notMemberError) Error() string        { return fmt.Sprintf("no member cluster %q", string(e)) }
func (e notMemberError) Is(target error) bool { return target == ErrNotMember }

// Unjoin removes the named cluster from the hub's cluster set. On the hub it
// deletes the member's reader RoleBinding, its ServiceAccount (which revokes
// the agent's token), Role and RoleBinding, its ExportRecords, its namespace
// and its MemberCluster, without waiting for the namespace to finish
// terminating. If member is not nil it also deletes the hub credentials
// Secret and the cluster ID and cluster set ClusterProperties there.
//
// Unjoin refuses, before deleting anything, when member is a different
// cluster from the one joined under name or is joined to another hub. It is
// idempotent: what is already gone is skipped, and a repeated or interrupted
// unjoin succeeds while anything of the membership is left. When nothing is
// left at all (or the name was never joined), it returns an error matching
// ErrNotMember.
func Unjoin(ctx context.Context, hub *rest.Config, member *rest.Config, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	hc, err := newClient(hub, "hub")
	if err != nil {
		return err
	}
	var mc client.Client
	if member != nil {
		if mc, err = newClient(member, "member"); err != nil {
			return err
		}
	}
	found, err := checkUnjoin(ctx, hc, mc, name)
	if err != nil {
		return err
	}
	if !found {
		return notMemberError(name)
	}
	if err := deleteHubObjects(ctx, hc, name); err != nil {
		return fmt.Errorf("unjoin %q on the hub: %w", name, err)
	}
	if mc != nil {
		if err := deleteMemberObjects(ctx, mc); err != nil {
			return fmt.Errorf("unjoin %q in the member: %w", name, err)
		}
	}
	return nil
}

// checkUnjoin reports whether anything of the membership exists, and refuses
// to touch a member that is not the cluster joined under name. member may
// be nil.
func checkUnjoin(ctx context.Context, hub, member client.Client, name string) (found bool, err error) {
	var mcObj causewayv1alpha1.MemberCluster
	joinedUID := ""
	switch err := hub.Get(ctx, client.ObjectKey{Name: name}, &mcObj); {
	case err == nil:
		found = true
		joinedUID = mcObj.Annotations[causewayv1alpha1.AnnotationClusterUID]
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("read MemberCluster %s on the hub: %w", name, explainNoMatch(err, "MemberClusters", "hub"))
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace(name)}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: readerBindingName(name)}},
	} {
		if found {
			break
		}
		switch err := hub.Get(ctx, client.ObjectKeyFromObject(obj), obj); {
		case err == nil:
			found = true
		case !apierrors.IsNotFound(err):
			return false, fmt.Errorf("read %s on the hub: %w", describe(obj), err)
		}
	}
	if member == nil {
		return found, nil
	}

	hubUID, err := clusterUID(ctx, hub, "hub")
	if err != nil {
		return false, err
	}
	memberUID, err := clusterUID(ctx, member, "member")
	if err != nil {
		return false, err
	}
	if joinedUID != "" && joinedUID != memberUID {
		return false, fmt.Errorf("the member cluster given is not the cluster joined as %q", name)
	}
	var id aboutv1alpha1.ClusterProperty
	switch err := member.Get(ctx, client.ObjectKey{Name: aboutv1alpha1.ClusterIDPropertyName}, &id); {
	case err == nil && id.Spec.Value != name:
		return false, fmt.Errorf("the member cluster given has cluster ID %q, not %q", id.Spec.Value, name)
	case err == nil:
		found = true
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("read ClusterProperty %s in the member: %w", aboutv1alpha1.ClusterIDPropertyName, explainNoMatch(err, "ClusterProperties", "member"))
	}
	var secret corev1.Secret
	switch err := member.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &secret); {
	case err == nil && secret.Annotations[causewayv1alpha1.AnnotationHubUID] != hubUID:
		return false, errors.New("the member cluster given is joined to another hub")
	case err == nil:
		found = true
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("read the member's hub credentials: %w", err)
	}
	return found, nil
}

// deleteHubObjects deletes the member's objects on the hub, credentials
// first, skipping what is already gone.
func deleteHubObjects(ctx context.Context, hub client.Client, name string) error {
	ns := causewayv1alpha1.MemberNamespace(name)
	objs := []client.Object{
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: readerBindingName(name)}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: causewayv1alpha1.AgentServiceAccount}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: AgentRole}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: AgentRole}},
	}
	if err := deleteAll(ctx, hub, objs); err != nil {
		return err
	}
	// The ExportRecords go now rather than with the namespace, so the hub
	// withdraws the member's exports without waiting for the namespace to
	// finish terminating.
	err := hub.DeleteAllOf(ctx, &causewayv1alpha1.ExportRecord{}, client.InNamespace(ns))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the ExportRecords in %s: %w", ns, explainNoMatch(err, "ExportRecords", "hub"))
	}
	return deleteAll(ctx, hub, []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}},
	})
}

// deleteMemberObjects deletes the hub credentials and the membership
// ClusterProperties in the member.
func deleteMemberObjects(ctx context.Context, member client.Client) error {
	return deleteAll(ctx, member, []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}},
		&aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterIDPropertyName}},
		&aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterSetPropertyName}},
	})
}

// deleteAll deletes objs in order; objects already gone are fine.
func deleteAll(ctx context.Context, c client.Client, objs []client.Object) error {
	for _, obj := range objs {
		if err := c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete %s: %w", describe(obj), err)
		}
	}
	return nil
}
