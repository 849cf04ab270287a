package membership

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aboutv1alpha1 "github.com/causeway-mesh/causeway/apis/about/v1alpha1"
	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
	"github.com/causeway-mesh/causeway/internal/linkapi"
)

// hubObjects are the objects a join of name creates on the hub.
func hubObjects(name string) []client.Object {
	ns := causewayv1alpha1.MemberNamespace(name)
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ClusterSetReaderRole}},
		&causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: causewayv1alpha1.AgentServiceAccount}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "causeway-agent"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "causeway-agent"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: "causeway-member-" + name}},
	}
}

// memberObjects are the objects a join creates in the member.
func memberObjects() []client.Object {
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}},
		&aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterIDPropertyName}},
		&aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterSetPropertyName}},
	}
}

// resourceVersions reads every object and returns its resourceVersion by
// description; a missing object fails the test.
func resourceVersions(ctx context.Context, t *testing.T, c client.Client, objs []client.Object) map[string]string {
	t.Helper()
	rvs := map[string]string{}
	for _, obj := range objs {
		fresh := obj.DeepCopyObject().(client.Object)
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
			t.Fatalf("get %s: %v", describe(obj), err)
		}
		rvs[describe(obj)] = fresh.GetResourceVersion()
	}
	return rvs
}

// requireGone fails unless every object is gone (a namespace may still be
// terminating: envtest runs no namespace controller).
func requireGone(ctx context.Context, t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, obj := range objs {
		fresh := obj.DeepCopyObject().(client.Object)
		err := c.Get(ctx, client.ObjectKeyFromObject(obj), fresh)
		if _, isNS := obj.(*corev1.Namespace); isNS && err == nil && fresh.GetDeletionTimestamp() != nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s: want it gone, got err=%v", describe(obj), err)
		}
	}
}

// requireAbsent fails if any of the objects exists.
func requireAbsent(ctx context.Context, t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, obj := range objs {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object)); !apierrors.IsNotFound(err) {
			t.Errorf("%s: want none, got err=%v", describe(obj), err)
		}
	}
}

func requireErrorContains(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %v, want one containing %q", err, want)
	}
}

func kubeSystemUID(ctx context.Context, t *testing.T, c client.Client) string {
	t.Helper()
	uid, err := clusterUID(ctx, c, "test")
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// agentClient returns a client with the credentials a join stored in the
// member.
func agentClient(ctx context.Context, t *testing.T, member client.Client) client.Client {
	t.Helper()
	var secret corev1.Secret
	if err := member.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &secret); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(secret.Data[causewayv1alpha1.HubCredentialsKey])
	if err != nil {
		t.Fatalf("the member's hub kubeconfig: %v", err)
	}
	c, err := newClient(cfg, "hub (as the agent)")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// agentWatchClient is agentClient's, able to watch.
func agentWatchClient(ctx context.Context, t *testing.T, member client.Client) client.WithWatch {
	t.Helper()
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(agentKubeconfigOf(ctx, t, member)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func agentKubeconfigOf(ctx context.Context, t *testing.T, member client.Client) string {
	t.Helper()
	var secret corev1.Secret
	if err := member.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &secret); err != nil {
		t.Fatal(err)
	}
	return string(secret.Data[causewayv1alpha1.HubCredentialsKey])
}

func agentToken(ctx context.Context, t *testing.T, member client.Client) string {
	t.Helper()
	var secret corev1.Secret
	if err := member.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &secret); err != nil {
		t.Fatal(err)
	}
	return tokenOf(secret.Data[causewayv1alpha1.HubCredentialsKey])
}

func exportRecord(cluster, namespace, name string) *causewayv1alpha1.ExportRecord {
	return &causewayv1alpha1.ExportRecord{
		ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(cluster), Name: causewayv1alpha1.ServiceKeyName(namespace, name)},
		Spec: causewayv1alpha1.ExportRecordSpec{
			Cluster:                 cluster,
			Service:                 causewayv1alpha1.ServiceRef{Namespace: namespace, Name: name},
			ExportCreationTimestamp: metav1.Now(),
			ServiceProperties: causewayv1alpha1.ServiceProperties{
				Type:  causewayv1alpha1.ServiceTypeClusterSetIP,
				Ports: []causewayv1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
			},
		},
	}
}

// TestJoinUnjoin is the life of a membership, step by step, against three
// real API servers: what a join creates, what it refuses, what the member's
// credentials may do on the hub, and what an unjoin takes away.
func TestJoinUnjoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	hub, a, b := clientFor(t, hubCluster), clientFor(t, clusterA), clientFor(t, clusterB)
	hubUID, uidA := kubeSystemUID(ctx, t, hub), kubeSystemUID(ctx, t, a)
	joinOpts := func(name string, member *testCluster) JoinOptions {
		return JoinOptions{
			Name: name, Region: "eu-west-1", Zone: "eu-west-1a",
			Hub: hubCluster.config(), Member: member.config(),
			HubServer: hubCluster.env.Config.Host,
		}
	}
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	var agentA client.Client

	step("join A creates every object on the hub and in A", func(t *testing.T) {
		if err := Join(ctx, joinOpts("a", clusterA)); err != nil {
			t.Fatal(err)
		}
		ns := causewayv1alpha1.MemberNamespace("a")

		var reader rbacv1.Role
		if err := hub.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ClusterSetReaderRole}, &reader); err != nil {
			t.Fatal(err)
		}
		wantReader := []rbacv1.PolicyRule{{APIGroups: []string{"causeway.dev"}, Resources: []string{"globalservices"}, Verbs: []string{"get", "list", "watch"}}}
		if !reflect.DeepEqual(reader.Rules, wantReader) {
			t.Errorf("reader Role rules = %+v, want %+v", reader.Rules, wantReader)
		}

		var mc causewayv1alpha1.MemberCluster
		if err := hub.Get(ctx, client.ObjectKey{Name: "a"}, &mc); err != nil {
			t.Fatal(err)
		}
		if mc.Spec.Region != "eu-west-1" || mc.Spec.Zone != "eu-west-1a" || mc.Annotations[causewayv1alpha1.AnnotationClusterUID] != uidA {
			t.Errorf("MemberCluster a: region %q zone %q uid %q, want eu-west-1, eu-west-1a, %s",
				mc.Spec.Region, mc.Spec.Zone, mc.Annotations[causewayv1alpha1.AnnotationClusterUID], uidA)
		}

		var memberNS corev1.Namespace
		if err := hub.Get(ctx, client.ObjectKey{Name: ns}, &memberNS); err != nil {
			t.Fatal(err)
		}
		if got := memberNS.Labels[causewayv1alpha1.LabelCluster]; got != "a" {
			t.Errorf("namespace %s label %s = %q, want a", ns, causewayv1alpha1.LabelCluster, got)
		}

		var role rbacv1.Role
		if err := hub.Get(ctx, client.ObjectKey{Namespace: ns, Name: "causeway-agent"}, &role); err != nil {
			t.Fatal(err)
		}
		wantRules := []rbacv1.PolicyRule{
			{APIGroups: []string{"causeway.dev"}, Resources: []string{"exportrecords"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"causeway.dev"}, Resources: []string{"exportrecords/status"}, Verbs: []string{"get"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"causeway-link-status"}, Verbs: []string{"update", "patch"}},
		}
		if !reflect.DeepEqual(role.Rules, wantRules) {
			t.Errorf("agent Role rules = %+v, want %+v", role.Rules, wantRules)
		}

		sa := rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: causewayv1alpha1.AgentServiceAccount}
		for key, wantRole := range map[client.ObjectKey]string{
			{Namespace: ns, Name: "causeway-agent"}:                                  "causeway-agent",
			{Namespace: causewayv1alpha1.SystemNamespace, Name: "causeway-member-a"}: causewayv1alpha1.ClusterSetReaderRole,
		} {
			var rb rbacv1.RoleBinding
			if err := hub.Get(ctx, key, &rb); err != nil {
				t.Fatal(err)
			}
			if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: wantRole}) || !reflect.DeepEqual(rb.Subjects, []rbacv1.Subject{sa}) {
				t.Errorf("RoleBinding %s: roleRef %+v subjects %+v, want Role %s for %+v", key, rb.RoleRef, rb.Subjects, wantRole, sa)
			}
		}
		resourceVersions(ctx, t, hub, hubObjects("a")) // all exist

		var secret corev1.Secret
		if err := a.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &secret); err != nil {
			t.Fatal(err)
		}
		if secret.Type != corev1.SecretTypeOpaque || secret.Annotations[causewayv1alpha1.AnnotationHubUID] != hubUID {
			t.Errorf("Secret: type %q hub UID %q, want Opaque, %s", secret.Type, secret.Annotations[causewayv1alpha1.AnnotationHubUID], hubUID)
		}
		kc, err := clientcmd.Load(secret.Data[causewayv1alpha1.HubCredentialsKey])
		if err != nil {
			t.Fatal(err)
		}
		cl := kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster]
		if cl.Server != hubCluster.env.Config.Host || string(cl.CertificateAuthorityData) != string(hubCluster.env.Config.CAData) {
			t.Errorf("kubeconfig server %q (want %q), CA matches the hub's: %v", cl.Server, hubCluster.env.Config.Host, string(cl.CertificateAuthorityData) == string(hubCluster.env.Config.CAData))
		}
		if tokenOf(secret.Data[causewayv1alpha1.HubCredentialsKey]) == "" {
			t.Error("the kubeconfig has no token")
		}
		for prop, want := range map[string]string{"cluster.clusterset.k8s.io": "a", "clusterset.k8s.io": "causeway"} {
			var cp aboutv1alpha1.ClusterProperty
			if err := a.Get(ctx, client.ObjectKey{Name: prop}, &cp); err != nil {
				t.Fatal(err)
			}
			if cp.Spec.Value != want {
				t.Errorf("ClusterProperty %s = %q, want %q", prop, cp.Spec.Value, want)
			}
		}
	})

	step("the same join again writes nothing", func(t *testing.T) {
		hubBefore, aBefore := resourceVersions(ctx, t, hub, hubObjects("a")), resourceVersions(ctx, t, a, memberObjects())
		if err := Join(ctx, joinOpts("a", clusterA)); err != nil {
			t.Fatal(err)
		}
		if got := resourceVersions(ctx, t, hub, hubObjects("a")); !maps.Equal(got, hubBefore) {
			t.Errorf("hub resourceVersions changed:\nbefore %v\nafter  %v", hubBefore, got)
		}
		if got := resourceVersions(ctx, t, a, memberObjects()); !maps.Equal(got, aBefore) {
			t.Errorf("member resourceVersions changed:\nbefore %v\nafter  %v", aBefore, got)
		}
	})

	step("a join with another zone updates only the MemberCluster", func(t *testing.T) {
		hubBefore, aBefore := resourceVersions(ctx, t, hub, hubObjects("a")), resourceVersions(ctx, t, a, memberObjects())
		o := joinOpts("a", clusterA)
		o.Zone = "eu-west-1b"
		if err := Join(ctx, o); err != nil {
			t.Fatal(err)
		}
		hubAfter := resourceVersions(ctx, t, hub, hubObjects("a"))
		for k := range hubAfter {
			if changed := hubAfter[k] != hubBefore[k]; changed != (k == "MemberCluster a") {
				t.Errorf("%s changed: %v", k, changed)
			}
		}
		if got := resourceVersions(ctx, t, a, memberObjects()); !maps.Equal(got, aBefore) {
			t.Errorf("member resourceVersions changed:\nbefore %v\nafter  %v", aBefore, got)
		}
		if err := Join(ctx, joinOpts("a", clusterA)); err != nil { // back to eu-west-1a
			t.Fatal(err)
		}
	})

	step("gateway addresses set spec.gateway; a re-join changes or removes it, and only the MemberCluster", func(t *testing.T) {
		gateway := func() *causewayv1alpha1.MemberClusterGateway {
			t.Helper()
			var mc causewayv1alpha1.MemberCluster
			if err := hub.Get(ctx, client.ObjectKey{Name: "a"}, &mc); err != nil {
				t.Fatal(err)
			}
			return mc.Spec.Gateway
		}
		joinWith := func(transport string, addrs ...string) {
			t.Helper()
			o := joinOpts("a", clusterA)
			o.GatewayAddresses, o.GatewayTransport = addrs, transport
			if err := Join(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		onlyMemberClusterChanged := func(before map[string]string) {
			t.Helper()
			after := resourceVersions(ctx, t, hub, hubObjects("a"))
			for k := range after {
				if changed := after[k] != before[k]; changed != (k == "MemberCluster a") {
					t.Errorf("%s changed: %v", k, changed)
				}
			}
		}

		before := resourceVersions(ctx, t, hub, hubObjects("a"))
		joinWith("", "10.255.1.2", "gw.a.example:443")
		want := &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"10.255.1.2", "gw.a.example:443"}, Transport: causewayv1alpha1.GatewayTransportQUIC}
		if got := gateway(); !reflect.DeepEqual(got, want) {
			t.Errorf("spec.gateway = %+v, want %+v", got, want)
		}
		onlyMemberClusterChanged(before)

		before = resourceVersions(ctx, t, hub, hubObjects("a"))
		joinWith("", "10.255.1.2", "gw.a.example:443")
		if got := resourceVersions(ctx, t, hub, hubObjects("a")); !maps.Equal(got, before) {
			t.Errorf("the same join with a gateway wrote: %v → %v", before, got)
		}

		joinWith("TCP", "[2001:db8::1]:15443")
		want = &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"[2001:db8::1]:15443"}, Transport: causewayv1alpha1.GatewayTransportTCP}
		if got := gateway(); !reflect.DeepEqual(got, want) {
			t.Errorf("after a re-join, spec.gateway = %+v, want %+v", got, want)
		}
		onlyMemberClusterChanged(before)

		before = resourceVersions(ctx, t, hub, hubObjects("a"))
		for _, tc := range []struct {
			transport string
			addrs     []string
			want      string
		}{
			{"", []string{"10.0.0.1", "GW.example:1"}, `invalid gateway address "GW.example:1"`},
			{"", []string{"gw.example"}, `invalid gateway address "gw.example"`},
			{"", []string{"10.0.0.256:1"}, "not a valid IPv4 address"},
			{"", []string{"gw:70000"}, "between 1 and 65535"},
			{"UDP", []string{"10.0.0.1"}, `invalid gateway transport "UDP"`},
			{"TCP", nil, "needs at least one gateway address"},
			{"", []string{"a:1", "a:2", "a:3", "a:4", "a:5", "a:6", "a:7", "a:8", "a:9"}, "at most 8"},
		} {
			o := joinOpts("a", clusterA)
			o.GatewayAddresses, o.GatewayTransport = tc.addrs, tc.transport
			requireErrorContains(t, Join(ctx, o), tc.want)
		}
		if got := resourceVersions(ctx, t, hub, hubObjects("a")); !maps.Equal(got, before) {
			t.Errorf("refused joins wrote: %v → %v", before, got)
		}

		joinWith("") // no addresses: no gateway
		if got := gateway(); got != nil {
			t.Errorf("a join without gateway addresses left spec.gateway %+v", got)
		}
		onlyMemberClusterChanged(before)
	})

	step("A under another name is refused and writes nothing", func(t *testing.T) {
		err := Join(ctx, joinOpts("a2", clusterA))
		requireErrorContains(t, err, `this cluster is already joined as "a"`)
		requireAbsent(ctx, t, hub, hubObjects("a2")[2:]...)
	})

	step("B under A's name is refused and writes nothing", func(t *testing.T) {
		requireErrorContains(t, Join(ctx, joinOpts("a", clusterB)), `cluster name "a" is taken by another cluster`)
		requireAbsent(ctx, t, b, memberObjects()...)
	})

	step("B with another cluster ID is refused", func(t *testing.T) {
		cp := &aboutv1alpha1.ClusterProperty{ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterIDPropertyName}, Spec: aboutv1alpha1.ClusterPropertySpec{Value: "elsewhere"}}
		if err := b.Create(ctx, cp); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = b.Delete(context.WithoutCancel(ctx), cp) }()
		requireErrorContains(t, Join(ctx, joinOpts("b", clusterB)), `this cluster already has cluster ID "elsewhere"`)
		requireAbsent(ctx, t, hub, hubObjects("b")[2:]...)
	})

	step("B joined to another hub is refused", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}}
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret,
				Annotations: map[string]string{causewayv1alpha1.AnnotationHubUID: "another-hub"}},
		}
		for _, obj := range []client.Object{ns, secret} {
			if err := b.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		err := Join(ctx, joinOpts("b", clusterB))
		if delErr := b.Delete(ctx, secret); delErr != nil {
			t.Fatal(delErr)
		}
		requireErrorContains(t, err, "this cluster is already joined to another hub")
		requireAbsent(ctx, t, hub, hubObjects("b")[2:]...)
	})

	step("invalid names are refused", func(t *testing.T) {
		for name, want := range map[string]string{
			"Bad_Name":                   `invalid cluster name "Bad_Name"`,
			"":                           "the cluster name is empty",
			strings.Repeat("x", 48):      "must be no more than 47 characters",
			"-a":                         `invalid cluster name "-a"`,
			"a.b":                        `invalid cluster name "a.b"`,
			strings.Repeat("x", 47) + "": "", // the longest valid name
		} {
			err := ValidateName(name)
			if want == "" {
				if err != nil {
					t.Errorf("ValidateName(%q) = %v, want nil", name, err)
				}
				continue
			}
			requireErrorContains(t, err, want)
		}
		requireErrorContains(t, Join(ctx, joinOpts("Bad_Name", clusterB)), `invalid cluster name "Bad_Name"`)
	})

	step("join B", func(t *testing.T) {
		o := joinOpts("b", clusterB)
		o.Region, o.Zone = "us-east-1", ""
		if err := Join(ctx, o); err != nil {
			t.Fatal(err)
		}
	})

	step("A's credentials work on the hub, only for A's work", func(t *testing.T) {
		agentA = agentClient(ctx, t, a)
		rec := exportRecord("a", "shop", "checkout")
		if err := agentA.Create(ctx, rec); err != nil {
			t.Errorf("A creates an ExportRecord in its namespace: %v", err)
		}
		renew := metav1.NewMicroTime(time.Now())
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace("a"), Name: causewayv1alpha1.AgentLeaseName},
			Spec:       coordinationv1.LeaseSpec{RenewTime: &renew},
		}
		if err := agentA.Create(ctx, lease); err != nil {
			t.Errorf("A creates its Lease: %v", err)
		}
		var gs causewayv1alpha1.GlobalServiceList
		if err := agentA.List(ctx, &gs, client.InNamespace(causewayv1alpha1.SystemNamespace)); err != nil {
			t.Errorf("A lists GlobalServices: %v", err)
		}
		// The hub keeps each member's intermediate CA in a Secret of its
		// namespace (federation/trust); here the test plays the hub.
		caSecret := func(cluster string) *corev1.Secret {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(cluster), Name: "causeway-ca"}, Data: map[string][]byte{"ca.crt": []byte(cluster)}}
			if err := hub.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			return s
		}
		ownCA, otherCA := caSecret("a"), caSecret("b")
		var got corev1.Secret
		if err := agentA.Get(ctx, client.ObjectKeyFromObject(ownCA), &got); err != nil || string(got.Data["ca.crt"]) != "a" {
			t.Errorf("A reads its CA Secret: %q, %v", got.Data["ca.crt"], err)
		}
		if err := agentA.List(ctx, &corev1.SecretList{}, client.InNamespace(causewayv1alpha1.MemberNamespace("a"))); err != nil {
			t.Errorf("A lists the Secrets of its namespace: %v", err)
		}

		forbidden := map[string]error{
			"create an ExportRecord in B's namespace": agentA.Create(ctx, exportRecord("b", "shop", "checkout")),
			"write a MemberCluster":                   agentA.Create(ctx, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "evil"}}),
			"write its ExportRecord's status":         agentA.Status().Update(ctx, rec),
			"read B's CA Secret":                      agentA.Get(ctx, client.ObjectKeyFromObject(otherCA), &corev1.Secret{}),
			"list Secrets in B's namespace":           agentA.List(ctx, &corev1.SecretList{}, client.InNamespace(causewayv1alpha1.MemberNamespace("b"))),
			"read Secrets of the hub's namespace":     agentA.List(ctx, &corev1.SecretList{}, client.InNamespace(causewayv1alpha1.SystemNamespace)),
			"overwrite its CA Secret":                 agentA.Update(ctx, got.DeepCopy()),
			"create a Secret in its namespace": agentA.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
				Namespace: causewayv1alpha1.MemberNamespace("a"), Name: "forged"}}),
			"delete its CA Secret": agentA.Delete(ctx, ownCA),
		}
		for what, err := range forbidden {
			if !apierrors.IsForbidden(err) {
				t.Errorf("A tries to %s: got %v, want Forbidden", what, err)
			}
		}
	})

	step("A's agent reads its own link plan and no other member's", func(t *testing.T) {
		// The hub writes each member's link plan into its namespace
		// (federation/hub); here the test plays the hub.
		plan := func(cluster string) *corev1.ConfigMap {
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(cluster), Name: linkplan.ConfigMapName},
				Data:       map[string]string{linkplan.ConfigMapKey: `{"cluster":"` + cluster + `","peers":[]}`},
			}
			if err := hub.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			return cm
		}
		own, other := plan("a"), plan("b")
		// What it creates in its namespace it cannot change afterwards
		// (unless it is its link status).
		forged := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: own.Namespace, Name: "forged"}}
		if err := agentA.Create(ctx, forged); err != nil {
			t.Errorf("A creates a ConfigMap in its namespace: %v", err)
		}
		forged.Data = map[string]string{"x": "y"}
		var got corev1.ConfigMap
		if err := agentA.Get(ctx, client.ObjectKeyFromObject(own), &got); err != nil || got.Data[linkplan.ConfigMapKey] != own.Data[linkplan.ConfigMapKey] {
			t.Errorf("A reads its link plan: %q, %v", got.Data, err)
		}
		// As the agent's cache does: list and watch its namespace, by name.
		byName := client.MatchingFields{"metadata.name": linkplan.ConfigMapName}
		var list corev1.ConfigMapList
		if err := agentA.List(ctx, &list, client.InNamespace(own.Namespace), byName); err != nil || len(list.Items) != 1 {
			t.Errorf("A lists its link plan: %d items, %v", len(list.Items), err)
		}
		watcher := agentWatchClient(ctx, t, a)
		w, err := watcher.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace(own.Namespace), byName)
		if err != nil {
			t.Errorf("A watches its link plan: %v", err)
		} else {
			w.Stop()
		}

		// Its link status: it creates and updates that ConfigMap, and
		// only it, and a re-join leaves it alone.
		status := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: own.Namespace, Name: linkapi.StatusConfigMap},
			Data:       map[string]string{linkapi.StatusKey: "{}"},
		}
		if err := agentA.Create(ctx, status); err != nil {
			t.Fatalf("A creates its link status: %v", err)
		}
		status.Data[linkapi.StatusKey] = "{ }"
		if err := agentA.Update(ctx, status); err != nil {
			t.Errorf("A updates its link status: %v", err)
		}
		if err := Join(ctx, joinOpts("a", clusterA)); err != nil {
			t.Fatal(err)
		}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(status), status); err != nil || status.Data[linkapi.StatusKey] != "{ }" {
			t.Errorf("after a re-join, A's link status is %v (%v), want what A wrote", status.Data, err)
		}
		otherStatus := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: other.Namespace, Name: linkapi.StatusConfigMap},
			Data:       map[string]string{linkapi.StatusKey: "{}"},
		}
		if err := hub.Create(ctx, otherStatus); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}

		forbidden := map[string]error{
			"update B's link status":              agentA.Update(ctx, otherStatus),
			"read B's link plan":                  agentA.Get(ctx, client.ObjectKeyFromObject(other), &corev1.ConfigMap{}),
			"list ConfigMaps in B's namespace":    agentA.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(other.Namespace)),
			"list ConfigMaps in every namespace":  agentA.List(ctx, &corev1.ConfigMapList{}, byName),
			"read the hub's ConfigMaps":           agentA.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(causewayv1alpha1.SystemNamespace)),
			"overwrite its link plan":             agentA.Update(ctx, got.DeepCopy()),
			"delete its link plan":                agentA.Delete(ctx, own),
			"create a ConfigMap in B's namespace": agentA.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: other.Namespace, Name: "forged"}}),
			"update another ConfigMap of its own": agentA.Update(ctx, forged),
		}
		for what, err := range forbidden {
			if !apierrors.IsForbidden(err) {
				t.Errorf("A tries to %s: got %v, want Forbidden", what, err)
			}
		}
		if _, err := watcher.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace(other.Namespace), byName); !apierrors.IsForbidden(err) {
			t.Errorf("A watches B's link plan: got %v, want Forbidden", err)
		}
	})

	step("unjoin with the wrong member is refused and deletes nothing", func(t *testing.T) {
		before := resourceVersions(ctx, t, hub, hubObjects("a"))
		err := Unjoin(ctx, hubCluster.config(), clusterB.config(), "a")
		requireErrorContains(t, err, "not the cluster joined as \"a\"")
		if got := resourceVersions(ctx, t, hub, hubObjects("a")); !maps.Equal(got, before) {
			t.Errorf("hub objects changed: %v → %v", before, got)
		}
		resourceVersions(ctx, t, b, memberObjects())
	})

	step("unjoin A removes it everywhere and revokes its token", func(t *testing.T) {
		if err := Unjoin(ctx, hubCluster.config(), clusterA.config(), "a"); err != nil {
			t.Fatal(err)
		}
		requireGone(ctx, t, hub, hubObjects("a")[2:]...)
		var records causewayv1alpha1.ExportRecordList
		if err := hub.List(ctx, &records, client.InNamespace(causewayv1alpha1.MemberNamespace("a"))); err != nil || len(records.Items) != 0 {
			t.Errorf("A's ExportRecords after unjoin: %d, err %v; want none", len(records.Items), err)
		}
		resourceVersions(ctx, t, hub, hubObjects("a")[:2]) // the shared objects stay
		requireGone(ctx, t, a, memberObjects()[1:]...)

		err := agentA.List(ctx, &causewayv1alpha1.GlobalServiceList{}, client.InNamespace(causewayv1alpha1.SystemNamespace))
		if !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) {
			t.Errorf("A's old token lists GlobalServices: got %v, want Unauthorized", err)
		}
		// B is untouched.
		resourceVersions(ctx, t, hub, hubObjects("b"))
		resourceVersions(ctx, t, b, memberObjects())
	})

	step("unjoin is idempotent; an unknown name is an error", func(t *testing.T) {
		if err := Unjoin(ctx, hubCluster.config(), clusterA.config(), "a"); err != nil {
			t.Errorf("second unjoin: %v", err)
		}
		if err := Unjoin(ctx, hubCluster.config(), nil, "a"); err != nil {
			t.Errorf("third unjoin, hub only: %v", err)
		}
		err := Unjoin(ctx, hubCluster.config(), nil, "never-joined")
		if !errors.Is(err, ErrNotMember) {
			t.Errorf("unjoin of an unknown name: got %v, want ErrNotMember", err)
		}
		requireErrorContains(t, err, `no member cluster "never-joined"`)
	})

	step("re-joining A while its old namespace terminates is refused", func(t *testing.T) {
		requireErrorContains(t, Join(ctx, joinOpts("a", clusterA)), "causeway-member-a in the hub cluster is still being deleted")
		requireAbsent(ctx, t, hub, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
		requireAbsent(ctx, t, a, memberObjects()[1:]...)
	})

	step("a join renews credentials the hub no longer accepts", func(t *testing.T) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace("b"), Name: causewayv1alpha1.AgentServiceAccount}}
		if err := hub.Delete(ctx, sa); err != nil {
			t.Fatal(err)
		}
		old := agentClient(ctx, t, b)
		if err := old.List(ctx, &causewayv1alpha1.GlobalServiceList{}, client.InNamespace(causewayv1alpha1.SystemNamespace)); !apierrors.IsUnauthorized(err) {
			t.Fatalf("B's token after its ServiceAccount was deleted: got %v, want Unauthorized", err)
		}
		o := joinOpts("b", clusterB)
		o.Region, o.Zone = "us-east-1", ""
		if err := Join(ctx, o); err != nil {
			t.Fatal(err)
		}
		if err := agentClient(ctx, t, b).List(ctx, &causewayv1alpha1.GlobalServiceList{}, client.InNamespace(causewayv1alpha1.SystemNamespace)); err != nil {
			t.Errorf("B's renewed token: %v", err)
		}
	})

	step("a join renews a token with less than a month left", func(t *testing.T) {
		o := joinOpts("b", clusterB)
		o.Region, o.Zone = "us-east-1", ""
		before := agentToken(ctx, t, b)
		if err := join(ctx, o, clocktesting.NewFakePassiveClock(time.Now().Add(tokenValidity-tokenRenewBefore/2))); err != nil {
			t.Fatal(err)
		}
		if agentToken(ctx, t, b) == before {
			t.Error("the token was not renewed")
		}
		if err := join(ctx, o, clocktesting.NewFakePassiveClock(time.Now().Add(tokenValidity-2*tokenRenewBefore))); err != nil {
			t.Fatal(err)
		}
		after := agentToken(ctx, t, b)
		if err := join(ctx, o, clocktesting.NewFakePassiveClock(time.Now())); err != nil {
			t.Fatal(err)
		}
		if agentToken(ctx, t, b) != after {
			t.Error("a token with two months left was renewed")
		}
	})

	step("unjoin B", func(t *testing.T) {
		if err := Unjoin(ctx, hubCluster.config(), clusterB.config(), "b"); err != nil {
			t.Fatal(err)
		}
		requireGone(ctx, t, hub, hubObjects("b")[2:]...)
		requireGone(ctx, t, b, memberObjects()[1:]...)
	})
}
