package world

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Ports of the echo app made by EchoApp.
const (
	EchoHTTPPort = 8080
	EchoGRPCPort = 9090
	EchoTCPPort  = 7070
)

// EchoApp returns a Deployment of causeway.dev/echo serving HTTP, gRPC and
// TCP, and a ClusterIP Service selecting it, both named name in namespace.
func EchoApp(namespace, name string, replicas int32) (*appsv1.Deployment, *corev1.Service) {
	labels := map[string]string{"app": name}
	type port struct {
		name string
		port int32
	}
	ports := []port{{"http", EchoHTTPPort}, {"grpc", EchoGRPCPort}, {"tcp-echo", EchoTCPPort}}
	var cports []corev1.ContainerPort
	var sports []corev1.ServicePort
	for _, p := range ports {
		cports = append(cports, corev1.ContainerPort{Name: p.name, ContainerPort: p.port, Protocol: corev1.ProtocolTCP})
		sp := corev1.ServicePort{Name: p.name, Port: p.port, TargetPort: intstr.FromString(p.name), Protocol: corev1.ProtocolTCP}
		switch p.name {
		case "http":
			sp.AppProtocol = new("http")
		case "grpc":
			sp.AppProtocol = new("kubernetes.io/h2c")
		}
		sports = append(sports, sp)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "echo", Image: ImageEcho, Ports: cports}},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: sports},
	}
	return dep, svc
}

// CreateEchoApp creates the namespace (if missing), and EchoApp's
// Deployment and Service.
func (c *Cluster) CreateEchoApp(ctx context.Context, namespace, name string, replicas int32) error {
	if err := c.EnsureNamespace(ctx, namespace); err != nil {
		return err
	}
	dep, svc := EchoApp(namespace, name, replicas)
	if _, err := c.Client.AppsV1().Deployments(namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster %s: create deployment %s/%s: %w", c.Name, namespace, name, err)
	}
	if _, err := c.Client.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster %s: create service %s/%s: %w", c.Name, namespace, name, err)
	}
	return nil
}

// EnsureNamespace creates namespace if it does not exist.
func (c *Cluster) EnsureNamespace(ctx context.Context, namespace string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster %s: create namespace %s: %w", c.Name, namespace, err)
	}
	return nil
}

// Endpoint is a ready endpoint of a Service, as its EndpointSlices list it.
type Endpoint struct {
	IP  string
	Pod string
}

// WaitReadyEndpoints waits until the Service's EndpointSlices list exactly
// n ready endpoints, and returns them sorted by pod name.
func (c *Cluster) WaitReadyEndpoints(ctx context.Context, namespace, service string, n int, timeout time.Duration) ([]Endpoint, error) {
	var got []Endpoint
	err := c.waitFor(ctx, fmt.Sprintf("%d ready endpoints of %s/%s", n, namespace, service), timeout, func(ctx context.Context) (bool, error) {
		slices, err := c.Client.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + service,
		})
		if err != nil {
			return false, err
		}
		got = got[:0]
		for _, s := range slices.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready == nil || !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
					continue
				}
				e := Endpoint{IP: ep.Addresses[0]}
				if ep.TargetRef != nil {
					e.Pod = ep.TargetRef.Name
				}
				got = append(got, e)
			}
		}
		return len(got) == n, nil
	})
	sort.Slice(got, func(i, j int) bool { return got[i].Pod < got[j].Pod })
	return got, err
}

// WaitListening waits until something accepts TCP connections at address
// inside the namespace (a workload process has bound its pod IP).
func (w *World) WaitListening(ctx context.Context, address string, timeout time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		conn, err := w.DialContext(dctx, "tcp", address)
		if err != nil {
			return false, nil
		}
		_ = conn.Close()
		return true, nil
	})
}

// HostPort joins an endpoint IP and a port.
func HostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
