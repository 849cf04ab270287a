// Package translatetest reads translation inputs from YAML, for tests of
// the translation and of what consumes it (the golden files under
// translate/testdata are written in this format).
package translatetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
	"sigs.k8s.io/yaml"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// inputsHeader is the optional first document of a testdata file.
type inputsHeader struct {
	Kind          string `json:"kind"`
	ClusterName   string `json:"clusterName"`
	Region        string `json:"region"`
	Zone          string `json:"zone"`
	RootNamespace string `json:"rootNamespace"`
	// LinkPlan is the member's link plan, as the hub writes it.
	LinkPlan *linkplan.Plan `json:"linkPlan"`
}

// DecodeInputs reads a multi-document YAML file of Kubernetes objects (and
// an optional "kind: Inputs" header with clusterName, region, zone,
// rootNamespace and linkPlan, an internal/linkplan.Plan). Pods are read
// and left out: see Decode.
func DecodeInputs(data []byte) (*translate.Inputs, error) {
	in, _, err := Decode(data)
	return in, err
}

// Decode reads a file as DecodeInputs does and also returns its Pods, in
// file order: the pods of sidecars whose inbound configuration
// (translate.Result.Inbound) a test renders.
func Decode(data []byte) (*translate.Inputs, []*corev1.Pod, error) {
	in := &translate.Inputs{ClusterName: "local"}
	var pods []*corev1.Pod
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return in, pods, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read document %d: %w", doc, err)
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", doc, err)
		}
		var into any
		switch head.Kind {
		case "":
			continue
		case "Inputs":
			var h inputsHeader
			if err := yaml.UnmarshalStrict(raw, &h); err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", doc, err)
			}
			in.ClusterName, in.Region, in.Zone, in.RootNamespace = h.ClusterName, h.Region, h.Zone, h.RootNamespace
			if h.LinkPlan != nil {
				if err := h.LinkPlan.Validate(); err != nil {
					return nil, nil, fmt.Errorf("document %d: %w", doc, err)
				}
				in.LinkPlan = h.LinkPlan
			}
			continue
		case "Service":
			o := &corev1.Service{}
			in.Services, into = append(in.Services, o), o
		case "EndpointSlice":
			o := &discoveryv1.EndpointSlice{}
			in.EndpointSlices, into = append(in.EndpointSlices, o), o
		case "ServiceImport":
			o := &mcsv1beta1.ServiceImport{}
			in.ServiceImports, into = append(in.ServiceImports, o), o
		case "HTTPRoute":
			o := &gatewayv1.HTTPRoute{}
			in.HTTPRoutes, into = append(in.HTTPRoutes, o), o
		case "GRPCRoute":
			o := &gatewayv1.GRPCRoute{}
			in.GRPCRoutes, into = append(in.GRPCRoutes, o), o
		case "TrafficPolicy":
			o := &causewayv1alpha1.TrafficPolicy{}
			in.TrafficPolicies, into = append(in.TrafficPolicies, o), o
		case "AuthorizationPolicy":
			o := &causewayv1alpha1.AuthorizationPolicy{}
			in.AuthorizationPolicies, into = append(in.AuthorizationPolicies, o), o
		case "RequestAuthentication":
			o := &causewayv1alpha1.RequestAuthentication{}
			in.RequestAuthentications, into = append(in.RequestAuthentications, o), o
		case "Pod":
			o := &corev1.Pod{}
			pods, into = append(pods, o), o
		default:
			return nil, nil, fmt.Errorf("document %d: unexpected kind %q", doc, head.Kind)
		}
		if err := yaml.UnmarshalStrict(raw, into); err != nil {
			return nil, nil, fmt.Errorf("document %d (%s): %w", doc, head.Kind, err)
		}
		// As the controller gathers them: pods whose sidecar takes HBONE.
		if p, ok := into.(*corev1.Pod); ok && p.Labels[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE {
			if in.HBONEPods == nil {
				in.HBONEPods = map[string]bool{}
			}
			in.HBONEPods[p.Namespace+"/"+p.Name] = true
		}
	}
}
