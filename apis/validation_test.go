/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package apis_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	aboutv1alpha1 "github.com/causeway-mesh/causeway/apis/about/v1alpha1"
	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/charts"
)

// testNamespace holds the namespaced objects of these tests.
const testNamespace = "validation"

// k8s is a client of the envtest API server started by TestMain, with every
// Causeway CRD installed.
var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests starts etcd and kube-apiserver from <repo>/bin, installs the CRDs
// from charts.All, runs the tests and stops the control plane. Missing
// binaries fail the run: a skipped validation test would let a broken CRD
// through unnoticed.
func runTests(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: find the repository root: %v\n", err)
		return 1
	}
	binDir := filepath.Join(root, "bin")
	var missing []string
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			missing = append(missing, filepath.Join(binDir, name))
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: envtest needs %s: run `make test-bins` to build them\n", strings.Join(missing, " and "))
		return 1
	}

	crds, err := charts.All()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: load CRDs: %v\n", err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: binDir,
		CRDs:                  crds,
		// A loaded 2-core machine can take far longer than the usual ~3 s.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start envtest (etcd and kube-apiserver from %s): %v\n", binDir, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, aboutv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: build scheme: %v\n", err)
			return 1
		}
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create client: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create namespace %s: %v\n", testNamespace, err)
		return 1
	}
	return m.Run()
}

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or any parent")
		}
		dir = parent
	}
}

// dryRunCreate creates obj with a server-side dry run: the API server
// defaults and validates it completely (schema and CEL rules) and writes
// the defaulted object back into obj, but stores nothing, so cases need no
// clean-up and never collide.
func dryRunCreate(t *testing.T, obj client.Object) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return k8s.Create(ctx, obj, client.DryRunAll)
}

// mustAccept fails the test if the API server rejects obj.
func mustAccept(t *testing.T, obj client.Object) {
	t.Helper()
	if err := dryRunCreate(t, obj); err != nil {
		t.Fatalf("valid %T rejected: %v", obj, err)
	}
}

// manifestCase is one object, written as a user would write it, and what
// the API server must answer.
type manifestCase struct {
	// name is the object's metadata.name; empty means the kind's usual name.
	name string
	// spec is the object's spec in YAML flow style.
	spec string
	// wantErrs are substrings the rejection must contain; none means the
	// object must be accepted.
	wantErrs []string
}

// runManifestCases applies every case as an object of the given kind.
func runManifestCases(t *testing.T, apiVersion, kind, defaultName string, namespaced bool, cases map[string]manifestCase) {
	t.Helper()
	for caseName, tc := range cases {
		t.Run(caseName, func(t *testing.T) {
			name := tc.name
			if name == "" {
				name = defaultName
			}
			manifest := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: %q}\nspec: %s\n", apiVersion, kind, name, tc.spec)
			asJSON, err := yaml.YAMLToJSON([]byte(manifest))
			if err != nil {
				t.Fatalf("test manifest is not YAML: %v\n%s", err, manifest)
			}
			obj := &unstructured.Unstructured{}
			if err := obj.UnmarshalJSON(asJSON); err != nil {
				t.Fatalf("test manifest is not an object: %v\n%s", err, manifest)
			}
			if namespaced {
				obj.SetNamespace(testNamespace)
			}

			err = dryRunCreate(t, obj)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("valid object rejected: %v\n%s", err, manifest)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid object accepted, want an error containing %q\n%s", tc.wantErrs, manifest)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

// causewayCases runs cases against a causeway.dev kind.
func causewayCases(t *testing.T, kind, defaultName string, namespaced bool, cases map[string]manifestCase) {
	t.Helper()
	runManifestCases(t, v1alpha1.GroupVersion.String(), kind, defaultName, namespaced, cases)
}

const target = `targetRef: {kind: Service, name: checkout}`

func TestMemberClusterValidation(t *testing.T) {
	t.Run("valid object is accepted and defaulted", func(t *testing.T) {
		mc := &v1alpha1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: "eu-west-1-prod"},
			Spec: v1alpha1.MemberClusterSpec{
				Region: "eu-west-1",
				Zone:   "eu-west-1a",
				Gateway: &v1alpha1.MemberClusterGateway{
					Addresses: []v1alpha1.GatewayAddress{"gw.eu.example.com:15443", "10.0.0.1:443", "[2001:db8::1]:15443", "10.0.0.2", "2001:db8::2"},
				},
			},
		}
		mustAccept(t, mc)
		if mc.Spec.Gateway.Transport != v1alpha1.GatewayTransportQUIC {
			t.Errorf("gateway.transport defaulted to %q, want QUIC", mc.Spec.Gateway.Transport)
		}
	})

	causewayCases(t, "MemberCluster", "cluster-a", false, map[string]manifestCase{
		"region only":   {spec: `{region: us-east-1}`},
		"no locality":   {spec: `{}`},
		"TCP transport": {spec: `{region: r, gateway: {addresses: ["gw:1"], transport: TCP}}`},
		"name is not a DNS label": {
			name:     "eu.west",
			spec:     `{region: eu-west-1}`,
			wantErrs: []string{"metadata.name is the cluster name and must be a DNS-1123 label"},
		},
		"name longer than 63": {
			name:     strings.Repeat("a", 64),
			spec:     `{region: eu-west-1}`,
			wantErrs: []string{"metadata.name is the cluster name and must be a DNS-1123 label"},
		},
		"zone with a space": {
			spec:     `{region: eu-west-1, zone: "eu west"}`,
			wantErrs: []string{"spec.zone", "regions and zones must be at most 63 letters, digits, '-', '_' or '.'"},
		},
		"gateway without addresses": {
			spec:     `{region: r, gateway: {addresses: []}}`,
			wantErrs: []string{"spec.gateway.addresses", "should have at least 1 items"},
		},
		"DNS name without port": {
			spec:     `{region: r, gateway: {addresses: [gw.example.com]}}`,
			wantErrs: []string{"spec.gateway.addresses[0]", "gateway addresses must be an IP address or host:port"},
		},
		"port out of range": {
			spec:     `{region: r, gateway: {addresses: ["gw.example.com:70000"]}}`,
			wantErrs: []string{"the port of a gateway address must be between 1 and 65535"},
		},
		"port zero": {
			spec:     `{region: r, gateway: {addresses: ["10.0.0.1:0"]}}`,
			wantErrs: []string{"the port of a gateway address must be between 1 and 65535"},
		},
		"bad IPv4 host": {
			spec:     `{region: r, gateway: {addresses: ["999.1.1.1:80"]}}`,
			wantErrs: []string{"the host of a gateway address is not a valid IPv4 address"},
		},
		"IPv4 in brackets": {
			spec:     `{region: r, gateway: {addresses: ["[10.0.0.1]:80"]}}`,
			wantErrs: []string{"the bracketed host of a gateway address is not a valid IPv6 address"},
		},
		"URL instead of address": {
			spec:     `{region: r, gateway: {addresses: ["https://gw.example.com:443"]}}`,
			wantErrs: []string{"gateway addresses must be an IP address or host:port"},
		},
		"unknown transport": {
			spec:     `{region: r, gateway: {addresses: ["gw:1"], transport: UDP}}`,
			wantErrs: []string{`spec.gateway.transport: Unsupported value: "UDP"`},
		},
	})
}

func TestTrafficPolicyValidation(t *testing.T) {
	t.Run("valid object is accepted", func(t *testing.T) {
		tp := &v1alpha1.TrafficPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: testNamespace},
			Spec: v1alpha1.TrafficPolicySpec{
				TargetRef: v1alpha1.PolicyTargetReference{Group: v1alpha1.MCSGroup, Kind: v1alpha1.TargetKindServiceImport, Name: "checkout"},
				LoadBalancer: &v1alpha1.LoadBalancer{
					Algorithm: v1alpha1.LoadBalancerRingHash,
					ConsistentHash: &v1alpha1.ConsistentHash{
						Cookie: &v1alpha1.ConsistentHashCookie{Name: "session", TTL: &metav1.Duration{Duration: time.Hour}, Path: "/"},
					},
				},
				ConnectionPool: &v1alpha1.ConnectionPool{MaxConnections: ptr.To[int32](100), MaxPendingRequests: ptr.To[int32](10), MaxRequests: ptr.To[int32](1000), MaxRetries: ptr.To[int32](3)},
				OutlierDetection: &v1alpha1.OutlierDetection{
					Consecutive5xx:     ptr.To[int32](5),
					Interval:           &metav1.Duration{Duration: 10 * time.Second},
					BaseEjectionTime:   &metav1.Duration{Duration: 30 * time.Second},
					MaxEjectionPercent: ptr.To[int32](50),
				},
				Retries: &v1alpha1.RetryPolicy{
					Attempts:      ptr.To[int32](3),
					PerTryTimeout: &metav1.Duration{Duration: 1500 * time.Millisecond},
					RetryOn:       []v1alpha1.RetryOn{v1alpha1.RetryOn5xx, v1alpha1.RetryOnUnavailable},
				},
				Timeout: &metav1.Duration{Duration: 15 * time.Second},
				FaultInjection: &v1alpha1.FaultInjection{
					Delay: &v1alpha1.FaultDelay{Percentage: "0.5", FixedDelay: metav1.Duration{Duration: 2 * time.Second}},
					Abort: &v1alpha1.FaultAbort{Percentage: "100", GRPCStatus: ptr.To[int32](0)},
				},
			},
		}
		mustAccept(t, tp)
	})

	causewayCases(t, "TrafficPolicy", "checkout", true, map[string]manifestCase{
		"timeout only":                 {spec: `{` + target + `, timeout: 0s}`},
		"Maglev hashing the source IP": {spec: `{` + target + `, loadBalancer: {algorithm: Maglev, consistentHash: {sourceIP: true}}}`},
		"HTTP abort":                   {spec: `{` + target + `, faultInjection: {abort: {percentage: "12.3456", httpStatus: 503}}}`},
		"ServiceImport without group":  {spec: `{targetRef: {kind: ServiceImport, name: checkout}, timeout: 1s}`},
		"nothing but a target": {
			spec:     `{` + target + `}`,
			wantErrs: []string{"a TrafficPolicy must set at least one of loadBalancer, connectionPool, outlierDetection, retries, timeout or faultInjection"},
		},
		"target missing": {
			spec:     `{timeout: 1s}`,
			wantErrs: []string{"spec.targetRef: Required value"},
		},
		"target of an unsupported kind": {
			spec:     `{targetRef: {kind: Deployment, name: checkout}, timeout: 1s}`,
			wantErrs: []string{`spec.targetRef.kind: Unsupported value: "Deployment"`},
		},
		"target group does not match kind": {
			spec:     `{targetRef: {group: multicluster.x-k8s.io, kind: Service, name: checkout}, timeout: 1s}`,
			wantErrs: []string{"group must be empty (the core group) for kind Service and 'multicluster.x-k8s.io' for kind ServiceImport"},
		},
		"ServiceImport in the core group": {
			spec:     `{targetRef: {group: "", kind: ServiceImport, name: checkout}, timeout: 1s}`,
			wantErrs: []string{"spec.targetRef", "group must be empty (the core group) for kind Service and 'multicluster.x-k8s.io' for kind ServiceImport"},
		},
		"Service with explicit core group": {spec: `{targetRef: {group: "", kind: Service, name: checkout}, timeout: 1s}`},
		"target name invalid": {
			spec:     `{targetRef: {kind: Service, name: Check_Out}, timeout: 1s}`,
			wantErrs: []string{"name must be a valid Service name"},
		},
		"hash settings with RoundRobin": {
			spec:     `{` + target + `, loadBalancer: {algorithm: RoundRobin, consistentHash: {sourceIP: true}}}`,
			wantErrs: []string{"consistentHash is only allowed when algorithm is RingHash or Maglev"},
		},
		"RingHash without hash settings": {
			spec:     `{` + target + `, loadBalancer: {algorithm: RingHash}}`,
			wantErrs: []string{"algorithms RingHash and Maglev need consistentHash to say what to hash"},
		},
		"unknown algorithm": {
			spec:     `{` + target + `, loadBalancer: {algorithm: WeightedRandom}}`,
			wantErrs: []string{`Unsupported value: "WeightedRandom"`},
		},
		"two hash keys": {
			spec:     `{` + target + `, loadBalancer: {algorithm: RingHash, consistentHash: {header: {name: x-user}, cookie: {name: session}}}}`,
			wantErrs: []string{"consistentHash must set exactly one of header, cookie or sourceIP: true"},
		},
		"sourceIP false is no hash key": {
			spec:     `{` + target + `, loadBalancer: {algorithm: Maglev, consistentHash: {sourceIP: false}}}`,
			wantErrs: []string{"consistentHash must set exactly one of header, cookie or sourceIP: true"},
		},
		"header name with a space": {
			spec:     `{` + target + `, loadBalancer: {algorithm: RingHash, consistentHash: {header: {name: "x user"}}}}`,
			wantErrs: []string{"header names may contain only letters, digits and the characters"},
		},
		"zero max connections": {
			spec:     `{` + target + `, connectionPool: {maxConnections: 0}}`,
			wantErrs: []string{"spec.connectionPool.maxConnections", "should be greater than or equal to 1"},
		},
		"zero max retries": {
			spec:     `{` + target + `, connectionPool: {maxRetries: 0}}`,
			wantErrs: []string{"spec.connectionPool.maxRetries", "should be greater than or equal to 1"},
		},
		"zero consecutive 5xx": {
			spec:     `{` + target + `, outlierDetection: {consecutive5xx: 0}}`,
			wantErrs: []string{"spec.outlierDetection.consecutive5xx", "should be greater than or equal to 1"},
		},
		"interval in words": {
			spec:     `{` + target + `, outlierDetection: {interval: "10 seconds"}}`,
			wantErrs: []string{"interval must be a duration such as '500ms', '10s' or '1m'"},
		},
		"zero base ejection time": {
			spec:     `{` + target + `, outlierDetection: {baseEjectionTime: 0s}}`,
			wantErrs: []string{"baseEjectionTime must be at least 1ms"},
		},
		"ejection percent above 100": {
			spec:     `{` + target + `, outlierDetection: {maxEjectionPercent: 101}}`,
			wantErrs: []string{"spec.outlierDetection.maxEjectionPercent", "should be less than or equal to 100"},
		},
		"too many retry attempts": {
			spec:     `{` + target + `, retries: {attempts: 11}}`,
			wantErrs: []string{"spec.retries.attempts", "should be less than or equal to 10"},
		},
		"unknown retry condition": {
			spec:     `{` + target + `, retries: {retryOn: [5xx, teapot]}}`,
			wantErrs: []string{`Unsupported value: "teapot"`},
		},
		"per-try timeout in days": {
			spec:     `{` + target + `, retries: {perTryTimeout: 1d}}`,
			wantErrs: []string{"perTryTimeout must be a duration such as '500ms' or '2s'"},
		},
		"negative timeout": {
			spec:     `{` + target + `, timeout: "-1s"}`,
			wantErrs: []string{"timeout must be a duration such as '500ms', '15s' or '1m30s'"},
		},
		"empty fault injection": {
			spec:     `{` + target + `, faultInjection: {}}`,
			wantErrs: []string{"faultInjection must set delay, abort or both"},
		},
		"percentage above 100": {
			spec:     `{` + target + `, faultInjection: {delay: {percentage: "150", fixedDelay: 1s}}}`,
			wantErrs: []string{"percentage must be a decimal string from '0' to '100' with at most 4 decimal places"},
		},
		"percentage too precise": {
			spec:     `{` + target + `, faultInjection: {delay: {percentage: "0.00001", fixedDelay: 1s}}}`,
			wantErrs: []string{"percentage must be a decimal string from '0' to '100' with at most 4 decimal places"},
		},
		"delay without fixed delay": {
			spec:     `{` + target + `, faultInjection: {delay: {percentage: "1"}}}`,
			wantErrs: []string{"spec.faultInjection.delay.fixedDelay: Required value"},
		},
		"abort with HTTP and gRPC status": {
			spec:     `{` + target + `, faultInjection: {abort: {percentage: "1", httpStatus: 503, grpcStatus: 14}}}`,
			wantErrs: []string{"abort must set exactly one of httpStatus or grpcStatus"},
		},
		"abort without status": {
			spec:     `{` + target + `, faultInjection: {abort: {percentage: "1"}}}`,
			wantErrs: []string{"abort must set exactly one of httpStatus or grpcStatus"},
		},
		"HTTP status out of range": {
			spec:     `{` + target + `, faultInjection: {abort: {percentage: "1", httpStatus: 600}}}`,
			wantErrs: []string{"spec.faultInjection.abort.httpStatus", "should be less than or equal to 599"},
		},
		"gRPC status out of range": {
			spec:     `{` + target + `, faultInjection: {abort: {percentage: "1", grpcStatus: 17}}}`,
			wantErrs: []string{"spec.faultInjection.abort.grpcStatus", "should be less than or equal to 16"},
		},
	})
}

func TestFailoverPolicyValidation(t *testing.T) {
	t.Run("valid object is accepted and defaulted", func(t *testing.T) {
		fp := &v1alpha1.FailoverPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: testNamespace},
			Spec: v1alpha1.FailoverPolicySpec{
				TargetRef: v1alpha1.PolicyTargetReference{Kind: v1alpha1.TargetKindServiceImport, Name: "checkout"},
				Priorities: []v1alpha1.FailoverPriority{
					{Region: "eu-west-1", Zone: "eu-west-1b"},
					{Region: "eu-west-1"},
					{Clusters: []v1alpha1.ClusterName{"us-east-1-prod", "us-east-2-prod"}},
				},
				FailoverThreshold: &v1alpha1.FailoverThreshold{},
				Failback:          &v1alpha1.Failback{Delay: &metav1.Duration{Duration: 30 * time.Second}},
			},
		}
		mustAccept(t, fp)
		if got := fp.Spec.FailoverThreshold.MinHealthyPercent; got == nil || *got != 70 {
			t.Errorf("failoverThreshold.minHealthyPercent defaulted to %v, want 70", got)
		}
		if fp.Spec.Failback.Mode != v1alpha1.FailbackAutomatic {
			t.Errorf("failback.mode defaulted to %q, want Automatic", fp.Spec.Failback.Mode)
		}
	})

	causewayCases(t, "FailoverPolicy", "checkout", true, map[string]manifestCase{
		"manual failback": {spec: `{` + target + `, priorities: [{zone: "1"}], failback: {mode: Manual}}`},
		"threshold zero":  {spec: `{` + target + `, priorities: [{region: r}], failoverThreshold: {minHealthyPercent: 0}}`},
		"priorities missing": {
			spec:     `{` + target + `}`,
			wantErrs: []string{"spec.priorities: Required value"},
		},
		"no priorities": {
			spec:     `{` + target + `, priorities: []}`,
			wantErrs: []string{"spec.priorities", "should have at least 1 items"},
		},
		"empty priority": {
			spec:     `{` + target + `, priorities: [{region: eu}, {}]}`,
			wantErrs: []string{"spec.priorities[1]", "each priority must select clusters by at least one of clusters, region or zone"},
		},
		"invalid cluster name": {
			spec:     `{` + target + `, priorities: [{clusters: [Bad.Cluster]}]}`,
			wantErrs: []string{"spec.priorities[0].clusters[0]", "cluster names must be DNS-1123 labels"},
		},
		"duplicate cluster": {
			spec:     `{` + target + `, priorities: [{clusters: [a, a]}]}`,
			wantErrs: []string{"spec.priorities[0].clusters[1]: Duplicate value"},
		},
		"invalid region": {
			spec:     `{` + target + `, priorities: [{region: "-eu"}]}`,
			wantErrs: []string{"regions and zones must be at most 63 letters"},
		},
		"threshold above 100": {
			spec:     `{` + target + `, priorities: [{region: eu}], failoverThreshold: {minHealthyPercent: 120}}`,
			wantErrs: []string{"spec.failoverThreshold.minHealthyPercent", "should be less than or equal to 100"},
		},
		"unknown failback mode": {
			spec:     `{` + target + `, priorities: [{region: eu}], failback: {mode: Sometimes}}`,
			wantErrs: []string{`spec.failback.mode: Unsupported value: "Sometimes"`},
		},
		"manual failback with delay": {
			spec:     `{` + target + `, priorities: [{region: eu}], failback: {mode: Manual, delay: 30s}}`,
			wantErrs: []string{"failback delay is only allowed when mode is Automatic"},
		},
		"failback delay in words": {
			spec:     `{` + target + `, priorities: [{region: eu}], failback: {delay: soon}}`,
			wantErrs: []string{"failback delay must be a duration such as '30s' or '5m'"},
		},
	})
}

func TestAuthorizationPolicyValidation(t *testing.T) {
	t.Run("valid object is accepted", func(t *testing.T) {
		ap := &v1alpha1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: testNamespace},
			Spec: v1alpha1.AuthorizationPolicySpec{
				Action: v1alpha1.AuthorizationActionAllow,
				Rules: []v1alpha1.AuthorizationRule{{
					From: &v1alpha1.AuthorizationSource{
						Principals:        []v1alpha1.SPIFFEIDPattern{"spiffe://cluster.local/ns/shop/sa/frontend", "spiffe://cluster.local/ns/ops/*", "*/sa/admin", "*"},
						RequestPrincipals: []v1alpha1.RequestPrincipal{"https://accounts.example.com/alice", "https://accounts.example.com/*", "*/bob", "*"},
						Namespaces:        []v1alpha1.NamespaceName{"shop"},
						Clusters:          []v1alpha1.ClusterName{"eu-west-1-prod"},
					},
					To: &v1alpha1.AuthorizationDestination{
						Ports:   []v1alpha1.PortNumber{8080, 9090},
						Paths:   []string{"/api/*", "/healthz"},
						Methods: []v1alpha1.HTTPMethod{"GET", "POST"},
						Hosts:   []string{"checkout.shop.svc.clusterset.local", "*.example.com"},
					},
					When: &v1alpha1.AuthorizationCondition{
						Headers: []v1alpha1.HeaderMatch{
							{Name: "x-env", Exact: ptr.To("prod")},
							{Name: "user-agent", Regex: ptr.To("^curl/.*")},
						},
						Claims: []v1alpha1.ClaimMatch{{Name: "groups", Values: []string{"admins", "ops-*", "*-leads", "*"}}},
					},
				}},
			},
		}
		mustAccept(t, ap)
	})

	causewayCases(t, "AuthorizationPolicy", "checkout", true, map[string]manifestCase{
		"deny all from a cluster": {spec: `{action: DENY, rules: [{from: {clusters: [untrusted]}}]}`},
		"allow nothing":           {spec: `{` + target + `, action: ALLOW}`},
		"action missing": {
			spec:     `{rules: [{from: {namespaces: [shop]}}]}`,
			wantErrs: []string{"spec.action: Required value"},
		},
		"unknown action": {
			spec:     `{action: AUDIT}`,
			wantErrs: []string{`spec.action: Unsupported value: "AUDIT"`},
		},
		"empty rule": {
			spec:     `{action: ALLOW, rules: [{}]}`,
			wantErrs: []string{"spec.rules[0]", "each rule must set at least one of from or to"},
		},
		"rule with only when": {
			spec:     `{action: ALLOW, rules: [{when: {headers: [{name: x-env, exact: prod}]}}]}`,
			wantErrs: []string{"each rule must set at least one of from or to"},
		},
		"principal without scheme": {
			spec:     `{action: ALLOW, rules: [{from: {principals: [cluster.local/ns/shop/sa/frontend]}}]}`,
			wantErrs: []string{"spec.rules[0].from.principals[0]", "principals must be SPIFFE IDs such as 'spiffe://cluster.local/ns/shop/sa/frontend'"},
		},
		"principal with uppercase trust domain": {
			spec:     `{action: ALLOW, rules: [{from: {principals: ["spiffe://Cluster.Local/ns/a/sa/b"]}}]}`,
			wantErrs: []string{"principals must be SPIFFE IDs"},
		},
		"empty from": {
			spec:     `{action: ALLOW, rules: [{from: {}}]}`,
			wantErrs: []string{"from must set at least one of principals, namespaces, clusters or requestPrincipals"},
		},
		"request principals alone": {spec: `{action: ALLOW, rules: [{from: {requestPrincipals: ["*"]}}]}`},
		"wildcard inside principal": {
			spec:     `{action: ALLOW, rules: [{from: {principals: ["spiffe://cluster.local/ns/*/sa/a"]}}]}`,
			wantErrs: []string{"principals must be SPIFFE IDs"},
		},
		"two wildcards in principal": {
			spec:     `{action: ALLOW, rules: [{from: {principals: ["*/ns/a/*"]}}]}`,
			wantErrs: []string{"principals must be SPIFFE IDs"},
		},
		"request principal without subject": {
			spec:     `{action: ALLOW, rules: [{from: {requestPrincipals: [https-accounts]}}]}`,
			wantErrs: []string{"spec.rules[0].from.requestPrincipals[0]", "requestPrincipals must be '<issuer>/<subject>'"},
		},
		"request principal with wildcard inside": {
			spec:     `{action: ALLOW, rules: [{from: {requestPrincipals: ["https://a/*/b"]}}]}`,
			wantErrs: []string{"requestPrincipals must be '<issuer>/<subject>'"},
		},
		"request principal with a space": {
			spec:     `{action: ALLOW, rules: [{from: {requestPrincipals: ["https://a/b c"]}}]}`,
			wantErrs: []string{"requestPrincipals must be '<issuer>/<subject>'"},
		},
		"claims": {spec: `{action: ALLOW, rules: [{from: {requestPrincipals: ["*"]}, when: {claims: [{name: groups, values: [admins]}]}}]}`},
		"claim value with wildcard inside": {
			spec:     `{action: ALLOW, rules: [{from: {requestPrincipals: ["*"]}, when: {claims: [{name: groups, values: ["a*b"]}]}}]}`,
			wantErrs: []string{"claim values may contain one '*', as the first or the last character"},
		},
		"claim value with two wildcards": {
			spec:     `{action: ALLOW, rules: [{from: {requestPrincipals: ["*"]}, when: {claims: [{name: groups, values: ["*a*"]}]}}]}`,
			wantErrs: []string{"claim values may contain one '*'"},
		},
		"claim without values": {
			spec:     `{action: ALLOW, rules: [{from: {requestPrincipals: ["*"]}, when: {claims: [{name: groups}]}}]}`,
			wantErrs: []string{"values: Required value"},
		},
		"empty when": {
			spec:     `{action: ALLOW, rules: [{from: {namespaces: [a]}, when: {}}]}`,
			wantErrs: []string{"when must set at least one of headers or claims"},
		},
		"path with double slash": {
			spec:     `{action: DENY, rules: [{to: {paths: ["/admin//x"]}}]}`,
			wantErrs: []string{"paths must be normalised"},
		},
		"path with dot segment": {
			spec:     `{action: DENY, rules: [{to: {paths: ["/public/../admin"]}}]}`,
			wantErrs: []string{"paths must be normalised"},
		},
		"path with backslash": {
			spec:     `{action: DENY, rules: [{to: {paths: ["/admin\\x"]}}]}`,
			wantErrs: []string{"paths must be normalised"},
		},
		"invalid namespace": {
			spec:     `{action: ALLOW, rules: [{from: {namespaces: [Kube_System]}}]}`,
			wantErrs: []string{"namespaces must be DNS-1123 labels"},
		},
		"empty to": {
			spec:     `{action: ALLOW, rules: [{to: {}}]}`,
			wantErrs: []string{"to must set at least one of ports, paths, methods or hosts"},
		},
		"port zero": {
			spec:     `{action: ALLOW, rules: [{to: {ports: [0]}}]}`,
			wantErrs: []string{"spec.rules[0].to.ports[0]", "should be greater than or equal to 1"},
		},
		"port too high": {
			spec:     `{action: ALLOW, rules: [{to: {ports: [70000]}}]}`,
			wantErrs: []string{"spec.rules[0].to.ports[0]", "should be less than or equal to 65535"},
		},
		"relative path": {
			spec:     `{action: ALLOW, rules: [{to: {paths: [api/v1]}}]}`,
			wantErrs: []string{"paths must start with '/' and may contain '*' only as the last character"},
		},
		"wildcard inside path": {
			spec:     `{action: ALLOW, rules: [{to: {paths: ["/api/*/items"]}}]}`,
			wantErrs: []string{"paths must start with '/' and may contain '*' only as the last character"},
		},
		"unknown method": {
			spec:     `{action: ALLOW, rules: [{to: {methods: [FETCH]}}]}`,
			wantErrs: []string{`Unsupported value: "FETCH"`},
		},
		"uppercase host": {
			spec:     `{action: ALLOW, rules: [{to: {hosts: [Shop.Example.com]}}]}`,
			wantErrs: []string{"hosts must be lowercase DNS names such as 'shop.example.com'"},
		},
		"header match with two matchers": {
			spec:     `{action: DENY, rules: [{from: {namespaces: [a]}, when: {headers: [{name: x-env, exact: prod, prefix: pr}]}}]}`,
			wantErrs: []string{"a header match must set exactly one of exact, prefix or regex"},
		},
		"header match without matcher": {
			spec:     `{action: DENY, rules: [{from: {namespaces: [a]}, when: {headers: [{name: x-env}]}}]}`,
			wantErrs: []string{"a header match must set exactly one of exact, prefix or regex"},
		},
		"pseudo-header": {
			spec:     `{action: DENY, rules: [{from: {namespaces: [a]}, when: {headers: [{name: ":path", prefix: /admin}]}}]}`,
			wantErrs: []string{"header names may contain only letters, digits"},
		},
	})
}

func TestRequestAuthenticationValidation(t *testing.T) {
	t.Run("valid object is accepted", func(t *testing.T) {
		ra := &v1alpha1.RequestAuthentication{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: testNamespace},
			Spec: v1alpha1.RequestAuthenticationSpec{
				TargetRef: &v1alpha1.PolicyTargetReference{Kind: v1alpha1.TargetKindService, Name: "checkout"},
				JWTRules: []v1alpha1.JWTRule{{
					Issuer:               "https://accounts.example.com",
					Audiences:            []string{"checkout", "shop"},
					JWKSURI:              "https://accounts.example.com/.well-known/jwks.json",
					FromHeaders:          []v1alpha1.JWTHeader{{Name: "Authorization", Prefix: "Bearer "}, {Name: "x-jwt"}},
					FromParams:           []string{"access_token"},
					ForwardOriginalToken: true,
				}, {
					Issuer: "issuer@example.com",
					JWKS:   `{"keys":[]}`,
				}},
			},
		}
		mustAccept(t, ra)
	})

	const jwks = `jwksUri: "https://idp.example.com/jwks"`
	causewayCases(t, "RequestAuthentication", "checkout", true, map[string]manifestCase{
		"whole namespace":  {spec: `{jwtRules: [{issuer: "https://idp.example.com", ` + jwks + `}]}`},
		"inline keys":      {spec: `{jwtRules: [{issuer: "https://idp.example.com", jwks: "{\"keys\": []}"}]}`},
		"non-URL issuer":   {spec: `{jwtRules: [{issuer: "idp-1", ` + jwks + `}]}`},
		"jwtRules missing": {spec: `{}`, wantErrs: []string{"spec.jwtRules: Required value"}},
		"no rules": {
			spec:     `{jwtRules: []}`,
			wantErrs: []string{"spec.jwtRules: Invalid value", "should have at least 1 items"},
		},
		"both key sources": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com", ` + jwks + `, jwks: "{}"}]}`,
			wantErrs: []string{"spec.jwtRules[0]", "set exactly one of jwksUri and jwks"},
		},
		"no key source": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com"}]}`,
			wantErrs: []string{"set exactly one of jwksUri and jwks"},
		},
		"plaintext jwksUri": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com", jwksUri: "http://idp.example.com/jwks"}]}`,
			wantErrs: []string{"spec.jwtRules[0].jwksUri", "jwksUri must be an https URL with a host"},
		},
		"jwksUri without host": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com", jwksUri: "https:///jwks"}]}`,
			wantErrs: []string{"jwksUri must be an https URL with a host"},
		},
		"jwksUri not a URL": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com", jwksUri: "idp.example.com/jwks"}]}`,
			wantErrs: []string{"jwksUri must be an https URL with a host"},
		},
		"issuer URL without host": {
			spec:     `{jwtRules: [{issuer: "https://", ` + jwks + `}]}`,
			wantErrs: []string{"spec.jwtRules[0].issuer", "an issuer that is a URL must be an http or https URL with a host"},
		},
		"issuer URL with another scheme": {
			spec:     `{jwtRules: [{issuer: "ftp://idp.example.com", ` + jwks + `}]}`,
			wantErrs: []string{"an issuer that is a URL must be an http or https URL with a host"},
		},
		"issuer with a space": {
			spec:     `{jwtRules: [{issuer: "my issuer", ` + jwks + `}]}`,
			wantErrs: []string{"issuer must be printable ASCII without spaces"},
		},
		"empty issuer": {
			spec:     `{jwtRules: [{issuer: "", ` + jwks + `}]}`,
			wantErrs: []string{"spec.jwtRules[0].issuer", "at least 1 chars long"},
		},
		"bad header name": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com", ` + jwks + `, fromHeaders: [{name: "x jwt"}]}]}`,
			wantErrs: []string{"spec.jwtRules[0].fromHeaders[0].name", "header names may contain only letters, digits"},
		},
		"bad query parameter": {
			spec:     `{jwtRules: [{issuer: "https://idp.example.com", ` + jwks + `, fromParams: ["a&b"]}]}`,
			wantErrs: []string{"query parameter names may contain only letters, digits"},
		},
		"bad target": {
			spec:     `{targetRef: {kind: Deployment, name: checkout}, jwtRules: [{issuer: "https://idp.example.com", ` + jwks + `}]}`,
			wantErrs: []string{`spec.targetRef.kind: Unsupported value: "Deployment"`},
		},
	})
}

func TestMeshConfigValidation(t *testing.T) {
	t.Run("valid object is accepted and defaulted", func(t *testing.T) {
		mc := &v1alpha1.MeshConfig{
			ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.MeshConfigName},
			Spec: v1alpha1.MeshConfigSpec{
				TrustDomain:       "mesh.example.com",
				ClusterSetIPRange: "240.0.0.0/16",
			},
		}
		mustAccept(t, mc)
		if mc.Spec.MTLS == nil || mc.Spec.MTLS.Mode != v1alpha1.MTLSStrict {
			t.Errorf("mtls defaulted to %+v, want mode STRICT", mc.Spec.MTLS)
		}
		if mc.Spec.WorkloadCertTTL == nil || mc.Spec.WorkloadCertTTL.Duration != 24*time.Hour {
			t.Errorf("workloadCertTTL defaulted to %v, want 24h", mc.Spec.WorkloadCertTTL)
		}
	})

	causewayCases(t, "MeshConfig", v1alpha1.MeshConfigName, false, map[string]manifestCase{
		"permissive, IPv6 range, short TTL": {spec: `{trustDomain: cluster.local, mtls: {mode: PERMISSIVE}, clusterSetIPRange: "fd00:10:96::/112", workloadCertTTL: 10m}`},
		"not named default": {
			name:     "mesh",
			spec:     `{trustDomain: cluster.local}`,
			wantErrs: []string{"MeshConfig is a singleton: its name must be 'default'"},
		},
		"trust domain missing": {
			spec:     `{mtls: {mode: STRICT}}`,
			wantErrs: []string{"spec.trustDomain: Required value"},
		},
		"trust domain not a DNS name": {
			spec:     `{trustDomain: "Cluster.Local"}`,
			wantErrs: []string{"trustDomain must be a lowercase DNS name such as 'cluster.local' or 'mesh.example.com'"},
		},
		"trust domain with scheme": {
			spec:     `{trustDomain: "spiffe://cluster.local"}`,
			wantErrs: []string{"trustDomain must be a lowercase DNS name"},
		},
		"unknown mTLS mode": {
			spec:     `{trustDomain: cluster.local, mtls: {mode: DISABLE}}`,
			wantErrs: []string{`spec.mtls.mode: Unsupported value: "DISABLE"`},
		},
		"range is not a CIDR": {
			spec:     `{trustDomain: cluster.local, clusterSetIPRange: 10.0.0.0}`,
			wantErrs: []string{"clusterSetIPRange must be a CIDR such as '240.0.0.0/16'"},
		},
		"range with host bits": {
			spec:     `{trustDomain: cluster.local, clusterSetIPRange: 10.0.1.0/16}`,
			wantErrs: []string{"clusterSetIPRange must have no host bits set"},
		},
		"certificate TTL too short": {
			spec:     `{trustDomain: cluster.local, workloadCertTTL: 1m}`,
			wantErrs: []string{"workloadCertTTL must be between 10m and 2160h (90 days)"},
		},
		"certificate TTL too long": {
			spec:     `{trustDomain: cluster.local, workloadCertTTL: 2161h}`,
			wantErrs: []string{"workloadCertTTL must be between 10m and 2160h (90 days)"},
		},
		"certificate TTL in days": {
			spec:     `{trustDomain: cluster.local, workloadCertTTL: 30d}`,
			wantErrs: []string{"workloadCertTTL must be a duration such as '1h' or '24h'"},
		},
	})
}

func TestClusterPropertyValidation(t *testing.T) {
	t.Run("valid object is accepted", func(t *testing.T) {
		mustAccept(t, &aboutv1alpha1.ClusterProperty{
			ObjectMeta: metav1.ObjectMeta{Name: aboutv1alpha1.ClusterIDPropertyName},
			Spec:       aboutv1alpha1.ClusterPropertySpec{Value: "eu-west-1-prod"},
		})
	})

	runManifestCases(t, aboutv1alpha1.GroupVersion.String(), "ClusterProperty", aboutv1alpha1.ClusterIDPropertyName, false, map[string]manifestCase{
		"cluster ID of 63 characters": {spec: `{value: ` + strings.Repeat("a", 63) + `}`},
		"cluster set name is free-form": {
			name: aboutv1alpha1.ClusterSetPropertyName,
			spec: `{value: "Production ClusterSet (EU)"}`,
		},
		"other property with a large value": {
			name: "fingerprint.example.com",
			spec: `{value: "` + strings.Repeat("x", 100000) + `"}`,
		},
		"cluster ID not a DNS label": {
			spec:     `{value: Cluster_1}`,
			wantErrs: []string{"spec.value", "the value of cluster.clusterset.k8s.io is the cluster ID and must be a DNS-1123 label"},
		},
		"cluster ID longer than 63": {
			spec:     `{value: ` + strings.Repeat("a", 64) + `}`,
			wantErrs: []string{"the value of cluster.clusterset.k8s.io is the cluster ID and must be a DNS-1123 label"},
		},
		"empty value": {
			name:     aboutv1alpha1.ClusterSetPropertyName,
			spec:     `{value: ""}`,
			wantErrs: []string{"spec.value", "should be at least 1 chars long"},
		},
		"value missing": {
			name:     aboutv1alpha1.ClusterSetPropertyName,
			spec:     `{}`,
			wantErrs: []string{"spec.value: Required value"},
		},
		"value too long": {
			name:     "fingerprint.example.com",
			spec:     `{value: "` + strings.Repeat("x", 128001) + `"}`,
			wantErrs: []string{"spec.value", "may not be more than 128000 bytes"},
		},
	})
}
