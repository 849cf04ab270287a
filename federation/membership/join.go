package membership

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	aboutv1alpha1 "github.com/causeway-mesh/causeway/apis/about/v1alpha1"
	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/linkapi"
)

// DefaultClusterSet is the cluster set name recorded in members'
// clusterset.k8s.io ClusterProperty when JoinOptions.ClusterSet is empty.
const DefaultClusterSet = "causeway"

// AgentRole is the Role (and RoleBinding) in a member's hub namespace that
// grants the member's agent its work there.
const AgentRole = "causeway-agent"

// maxNameLength is the longest cluster name whose hub namespace,
// causeway-member-<name>, is still a valid namespace name (63 characters).
const maxNameLength = validation.DNS1123LabelMaxLength - len(causewayv1alpha1.MemberNamespacePrefix)

// JoinOptions says which cluster to join to which hub, under which name.
type JoinOptions struct {
	// Name is the cluster's name in the cluster set: a DNS-1123 label of at
	// most 47 characters (its hub namespace adds a 16-character prefix).
	Name string

	// Region and Zone are the cluster's locality (label-value syntax);
	// empty means none. They are the MemberCluster's spec: a second join
	// with other values changes them.
	Region, Zone string

	// Hub and Member give admin access to the hub and to the member, as a
	// kubeconfig context does. They may point at the same cluster: the hub
	// may also be a member.
	Hub, Member *rest.Config

	// HubServer is the hub's API URL as the member's agent reaches it;
	// empty means Hub.Host.
	HubServer string

	// ClusterSet is the cluster set's name, recorded in the member's
	// clusterset.k8s.io ClusterProperty; empty means DefaultClusterSet.
	ClusterSet string

	// GatewayAddresses are where other clusters' gateways reach the
	// member's east-west gateway, in order of preference: host:port or a
	// bare IP address (port 15443), checked as the CRD checks them (see
	// Gateway). None: the member's gateway cannot be reached from outside
	// (behind NAT, say) and dials the others. GatewayTransport is QUIC
	// (the default) or TCP. Like Region and Zone they are the
	// MemberCluster's spec: a second join with others changes them, and
	// one without addresses removes the gateway.
	GatewayAddresses []string
	GatewayTransport string
}

// joinPlan is what the checks found out and what the writes act on.
type joinPlan struct {
	opts      JoinOptions
	gateway   *causewayv1alpha1.MemberClusterGateway
	hubServer string
	caData    []byte
	hubUID    string
	memberUID string
	// existingKubeconfig is the member's current hub kubeconfig, if its
	// credentials Secret exists and belongs to this hub.
	existingKubeconfig []byte
}

// Join makes the Member cluster a member of the Hub's cluster set under
// o.Name. It first checks that the name is free, that the member is not
// already joined under another name or to another hub, and that both
// clusters serve Causeway's CRDs; a failed check writes nothing. Then it
// creates or updates, on the hub, the MemberCluster and the member's
// namespace, ServiceAccount and RBAC, and in the member the hub credentials
// Secret and the cluster ID and cluster set ClusterProperties. Objects that
// already match are left alone, so joining again with the same options
// writes nothing.
func Join(ctx context.Context, o JoinOptions) error {
	return join(ctx, o, clock.RealClock{})
}

func join(ctx context.Context, o JoinOptions, clk clock.PassiveClock) error {
	plan, err := completeJoinOptions(o)
	if err != nil {
		return err
	}
	hub, err := newClient(o.Hub, "hub")
	if err != nil {
		return err
	}
	member, err := newClient(o.Member, "member")
	if err != nil {
		return err
	}
	if err := checkJoin(ctx, hub, member, plan); err != nil {
		return err
	}
	if err := writeHub(ctx, hub, plan.opts, plan.gateway, plan.memberUID); err != nil {
		return fmt.Errorf("join %q on the hub: %w", o.Name, err)
	}
	kubeconfig, err := agentKubeconfig(ctx, hub, plan, clk)
	if err != nil {
		return fmt.Errorf("join %q: %w", o.Name, err)
	}
	if err := writeMember(ctx, member, plan, kubeconfig); err != nil {
		return fmt.Errorf("join %q in the member: %w", o.Name, err)
	}
	return nil
}

// ValidateName reports whether name can name a member cluster.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("the cluster name is empty")
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return fmt.Errorf("invalid cluster name %q: %s", name, strings.Join(msgs, "; "))
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("invalid cluster name %q: must be no more than %d characters, so that its hub namespace %q is a valid namespace name",
			name, maxNameLength, causewayv1alpha1.MemberNamespace(name))
	}
	return nil
}

// completeJoinOptions validates o, fills in its defaults and reads the hub's
// CA certificate.
func completeJoinOptions(o JoinOptions) (*joinPlan, error) {
	if err := ValidateName(o.Name); err != nil {
		return nil, err
	}
	for flag, v := range map[string]string{"region": o.Region, "zone": o.Zone} {
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			return nil, fmt.Errorf("invalid %s %q: %s", flag, v, strings.Join(msgs, "; "))
		}
	}
	gateway, err := Gateway(o.GatewayAddresses, o.GatewayTransport)
	if err != nil {
		return nil, err
	}
	if o.Hub == nil || o.Member == nil {
		return nil, errors.New("join needs connection settings for both the hub and the member cluster")
	}
	if o.ClusterSet == "" {
		o.ClusterSet = DefaultClusterSet
	}
	server := o.HubServer
	if server == "" {
		server = o.Hub.Host
	}
	if !strings.Contains(server, "://") {
		server = "https://" + server // rest.Config's own default scheme
	}
	if u, err := url.Parse(server); err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid hub server URL %q: want https://host[:port]", server)
	}
	ca := o.Hub.CAData
	if len(ca) == 0 && o.Hub.CAFile != "" {
		b, err := os.ReadFile(o.Hub.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the hub's CA certificate: %w", err)
		}
		ca = b
	}
	return &joinPlan{opts: o, gateway: gateway, hubServer: server, caData: ca}, nil
}

// checkJoin reads both clusters and refuses the join if it would take a name
// or a cluster that belongs to another membership. It writes nothing.
func checkJoin(ctx context.Context, hub, member client.Client, p *joinPlan) error {
	name := p.opts.Name
	var err error
	if p.hubUID, err = clusterUID(ctx, hub, "hub"); err != nil {
		return err
	}
	if p.memberUID, err = clusterUID(ctx, member, "member"); err != nil {
		return err
	}

	var list causewayv1alpha1.MemberClusterList
	if err := hub.List(ctx, &list); err != nil {
		return fmt.Errorf("list MemberClusters on the hub: %w", explainNoMatch(err, "MemberClusters", "hub"))
	}
	for _, mc := range list.Items {
		uid := mc.Annotations[causewayv1alpha1.AnnotationClusterUID]
		switch {
		case mc.Name == name && uid != "" && uid != p.memberUID:
			return fmt.Errorf("cluster name %q is taken by another cluster", name)
		case mc.Name != name && uid == p.memberUID:
			return fmt.Errorf("this cluster is already joined as %q", mc.Name)
		}
	}
	for _, ns := range []string{causewayv1alpha1.SystemNamespace, causewayv1alpha1.MemberNamespace(name)} {
		if err := checkNotTerminating(ctx, hub, ns, "hub"); err != nil {
			return err
		}
	}

	if err := checkNotTerminating(ctx, member, causewayv1alpha1.SystemNamespace, "member"); err != nil {
		return err
	}
	props := map[string]string{
		aboutv1alpha1.ClusterIDPropertyName:  name,
		aboutv1alpha1.ClusterSetPropertyName: p.opts.ClusterSet,
	}
	for prop, want := range props {
		var cp aboutv1alpha1.ClusterProperty
		err := member.Get(ctx, client.ObjectKey{Name: prop}, &cp)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("read ClusterProperty %s in the member: %w", prop, explainNoMatch(err, "ClusterProperties", "member"))
		case cp.Spec.Value != want && prop == aboutv1alpha1.ClusterIDPropertyName:
			return fmt.Errorf("this cluster already has cluster ID %q", cp.Spec.Value)
		case cp.Spec.Value != want:
			return fmt.Errorf("this cluster already belongs to cluster set %q, not %q", cp.Spec.Value, want)
		}
	}
	var secret corev1.Secret
	err = member.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &secret)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read the member's hub credentials: %w", err)
	case secret.Annotations[causewayv1alpha1.AnnotationHubUID] != p.hubUID:
		return errors.New("this cluster is already joined to another hub")
	default:
		p.existingKubeconfig = secret.Data[causewayv1alpha1.HubCredentialsKey]
	}
	return nil
}

// checkNotTerminating fails if namespace ns exists but is being deleted:
// nothing can be created in it until it is gone.
func checkNotTerminating(ctx context.Context, c client.Client, ns, which string) error {
	var obj corev1.Namespace
	err := c.Get(ctx, client.ObjectKey{Name: ns}, &obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read namespace %s in the %s cluster: %w", ns, which, err)
	case obj.DeletionTimestamp != nil:
		return fmt.Errorf("namespace %s in the %s cluster is still being deleted (by an earlier unjoin?); retry once it is gone", ns, which)
	}
	return nil
}

// readerRules lets members read the cluster set's GlobalServices.
var readerRules = []rbacv1.PolicyRule{{
	APIGroups: []string{causewayv1alpha1.GroupName},
	Resources: []string{"globalservices"},
	Verbs:     []string{"get", "list", "watch"},
}}

// agentRules is all an agent may do in its own hub namespace: publish its
// ExportRecords (and read the hub's verdict on them), renew its Lease, and
// read the Secrets and ConfigMaps the hub keeps there for it (its
// intermediate CA, causeway-ca, and its gateway's link plan,
// causeway-link-plan), and report its links' status in the ConfigMap
// causeway-link-status. RBAC cannot limit a create to a name, so the agent
// may create ConfigMaps in its namespace, but update only that one: the
// hub's plan, which the hub writes whatever it finds, stays the hub's.
// Reading, not writing, the rest: the hub alone issues CAs and plans
// links.
var agentRules = []rbacv1.PolicyRule{
	{
		APIGroups: []string{causewayv1alpha1.GroupName},
		Resources: []string{"exportrecords"},
		Verbs:     []string{"get", "list", "watch", "create", "update", "patch", "delete"},
	},
	{
		APIGroups: []string{causewayv1alpha1.GroupName},
		Resources: []string{"exportrecords/status"},
		Verbs:     []string{"get"},
	},
	{
		APIGroups: []string{"coordination.k8s.io"},
		Resources: []string{"leases"},
		Verbs:     []string{"get", "list", "watch", "create", "update", "patch"},
	},
	{
		APIGroups: []string{""},
		Resources: []string{"secrets"},
		Verbs:     []string{"get", "list", "watch"},
	},
	{
		APIGroups: []string{""},
		Resources: []string{"configmaps"},
		Verbs:     []string{"get", "list", "watch", "create"},
	},
	{
		APIGroups:     []string{""},
		Resources:     []string{"configmaps"},
		ResourceNames: []string{linkapi.StatusConfigMap},
		Verbs:         []string{"update", "patch"},
	},
}

// readerBindingName is the RoleBinding in the hub's SystemNamespace that
// lets the named member read GlobalServices.
func readerBindingName(cluster string) string {
	return causewayv1alpha1.MemberNamespacePrefix + cluster
}

// write is one object to create, or to update when mutate changes it.
type write struct {
	obj client.Object
	// mutate sets the fields the join owns on obj, which holds the
	// object as it exists, or only its name for a new one.
	mutate func()
}

// apply runs the writes in order; each creates its object if missing and
// updates it only if mutate changed something.
func apply(ctx context.Context, c client.Client, writes []write) error {
	for _, w := range writes {
		mutate := func() error {
			if w.mutate != nil {
				w.mutate()
			}
			return nil
		}
		if _, err := controllerutil.CreateOrUpdate(ctx, c, w.obj, mutate); err != nil {
			return fmt.Errorf("create or update %s: %w", describe(w.obj), err)
		}
	}
	return nil
}

// describe names obj for errors: "Role causeway-system/causeway-member-reader".
func describe(obj client.Object) string {
	kind := "object"
	if gvk, err := apiutil.GVKForObject(obj, scheme); err == nil {
		kind = gvk.Kind
	}
	if obj.GetNamespace() == "" {
		return kind + " " + obj.GetName()
	}
	return kind + " " + obj.GetNamespace() + "/" + obj.GetName()
}

// setLabel sets one label on obj.
func setLabel(obj metav1.Object, key, value string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[key] = value
	obj.SetLabels(labels)
}

// writeHub creates or updates the member's objects on the hub.
func writeHub(ctx context.Context, hub client.Client, o JoinOptions, gateway *causewayv1alpha1.MemberClusterGateway, memberUID string) error {
	name, ns := o.Name, causewayv1alpha1.MemberNamespace(o.Name)
	agent := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: causewayv1alpha1.AgentServiceAccount}
	owned := func(obj metav1.Object) { setLabel(obj, causewayv1alpha1.LabelCluster, name) }

	readerRole := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ClusterSetReaderRole}}
	mc := &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
	memberNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: causewayv1alpha1.AgentServiceAccount}}
	agentRole := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: AgentRole}}
	agentBinding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: AgentRole}}
	readerBinding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: readerBindingName(name)}}

	for _, rb := range []struct {
		binding *rbacv1.RoleBinding
		role    string
	}{{agentBinding, AgentRole}, {readerBinding, causewayv1alpha1.ClusterSetReaderRole}} {
		if err := replaceIfRoleRefDiffers(ctx, hub, rb.binding, roleRef(rb.role)); err != nil {
			return err
		}
	}
	return apply(ctx, hub, []write{
		{obj: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}}},
		{obj: readerRole, mutate: func() { readerRole.Rules = readerRules }},
		{obj: mc, mutate: func() {
			metav1.SetMetaDataAnnotation(&mc.ObjectMeta, causewayv1alpha1.AnnotationClusterUID, memberUID)
			mc.Spec.Region = causewayv1alpha1.LocalityName(o.Region)
			mc.Spec.Zone = causewayv1alpha1.LocalityName(o.Zone)
			mc.Spec.Gateway = gateway
		}},
		{obj: memberNS, mutate: func() { owned(memberNS) }},
		{obj: sa, mutate: func() { owned(sa) }},
		{obj: agentRole, mutate: func() { owned(agentRole); agentRole.Rules = agentRules }},
		{obj: agentBinding, mutate: func() {
			owned(agentBinding)
			agentBinding.RoleRef = roleRef(AgentRole)
			agentBinding.Subjects = []rbacv1.Subject{agent}
		}},
		{obj: readerBinding, mutate: func() {
			owned(readerBinding)
			readerBinding.RoleRef = roleRef(causewayv1alpha1.ClusterSetReaderRole)
			readerBinding.Subjects = []rbacv1.Subject{agent}
		}},
	})
}

// roleRef refers to the named Role in the binding's namespace.
func roleRef(role string) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role}
}

// replaceIfRoleRefDiffers deletes binding if it exists with another roleRef:
// roleRef is immutable, so such a binding can only be recreated.
func replaceIfRoleRefDiffers(ctx context.Context, c client.Client, binding *rbacv1.RoleBinding, want rbacv1.RoleRef) error {
	var existing rbacv1.RoleBinding
	err := c.Get(ctx, client.ObjectKeyFromObject(binding), &existing)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", describe(binding), err)
	case existing.RoleRef == want:
		return nil
	}
	if err := c.Delete(ctx, &existing, client.Preconditions{UID: &existing.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s to change its roleRef: %w", describe(binding), err)
	}
	return nil
}

// writeMember creates or updates the hub credentials and the
// ClusterProperties in the member.
func writeMember(ctx context.Context, member client.Client, p *joinPlan, kubeconfig []byte) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}}
	id := &aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterIDPropertyName}}
	set := &aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterSetPropertyName}}
	return apply(ctx, member, []write{
		{obj: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}}},
		{obj: secret, mutate: func() {
			if secret.Type == "" {
				secret.Type = corev1.SecretTypeOpaque // immutable once set
			}
			metav1.SetMetaDataAnnotation(&secret.ObjectMeta, causewayv1alpha1.AnnotationHubUID, p.hubUID)
			setLabel(secret, causewayv1alpha1.LabelCluster, p.opts.Name)
			secret.Data = map[string][]byte{causewayv1alpha1.HubCredentialsKey: kubeconfig}
		}},
		{obj: id, mutate: func() { id.Spec.Value = p.opts.Name }},
		{obj: set, mutate: func() { set.Spec.Value = p.opts.ClusterSet }},
	})
}
