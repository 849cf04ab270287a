package world_test

// invalidObjects has one invalid object per Causeway CRD, and the message
// the API server must give for it. Each is otherwise valid, so the message
// names the one rule it breaks.
var invalidObjects = []struct {
	name, manifest, wantMessage string
}{
	{
		name: "MemberCluster",
		manifest: `apiVersion: causeway.dev/v1alpha1
kind: MemberCluster
metadata:
  name: east.example
spec:
  region: us-east-1
`,
		wantMessage: "metadata.name is the cluster name and must be a DNS-1123 label",
	},
	{
		name: "TrafficPolicy",
		manifest: `apiVersion: causeway.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: checkout
  namespace: default
spec:
  targetRef: {kind: Service, name: checkout}
  loadBalancer:
    algorithm: RoundRobin
    consistentHash: {sourceIP: true}
`,
		wantMessage: "consistentHash is only allowed when algorithm is RingHash or Maglev",
	},
	{
		name: "FailoverPolicy",
		manifest: `apiVersion: causeway.dev/v1alpha1
kind: FailoverPolicy
metadata:
  name: checkout
  namespace: default
spec:
  targetRef: {kind: Service, name: checkout}
  priorities:
  - {}
`,
		wantMessage: "each priority must select clusters by at least one of clusters, region or zone",
	},
	{
		name: "AuthorizationPolicy",
		manifest: `apiVersion: causeway.dev/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: checkout
  namespace: default
spec:
  action: ALLOW
  rules:
  - from:
      principals: ["frontend"]
`,
		wantMessage: "principals must be SPIFFE IDs",
	},
	{
		name: "MeshConfig",
		manifest: `apiVersion: causeway.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  trustDomain: cluster.local
`,
		wantMessage: "MeshConfig is a singleton: its name must be 'default'",
	},
	{
		name: "ClusterProperty",
		manifest: `apiVersion: about.k8s.io/v1alpha1
kind: ClusterProperty
metadata:
  name: cluster.clusterset.k8s.io
spec:
  value: Not_A_Cluster_Name
`,
		wantMessage: "the value of cluster.clusterset.k8s.io is the cluster ID and must be a DNS-1123 label",
	},
}
