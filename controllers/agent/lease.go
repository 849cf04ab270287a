package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// leaseRenewer keeps the agent's Lease in its hub namespace fresh, and
// reports on it the member's namespaces (for namespace sameness in `causeway
// status`) and the agent's version.
type leaseRenewer struct {
	hub      client.Client
	member   client.Reader
	cluster  string
	duration time.Duration
	version  string
	log      *slog.Logger
}

func (l *leaseRenewer) run(ctx context.Context) error {
	t := time.NewTicker(l.duration / 3)
	defer t.Stop()
	failing := false
	for {
		if err := l.renew(ctx); err != nil {
			if !failing {
				l.log.Warn("cannot renew the lease on the hub; the hub will withdraw this cluster's endpoints if this lasts", "err", err)
			}
			failing = true
		} else if failing {
			l.log.Info("lease renewed again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (l *leaseRenewer) renew(ctx context.Context) error {
	namespaces, err := l.namespaces(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.duration/3)
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	key := client.ObjectKey{Namespace: causewayv1alpha1.MemberNamespace(l.cluster), Name: causewayv1alpha1.AgentLeaseName}
	var lease coordinationv1.Lease
	err = l.hub.Get(ctx, key, &lease)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get lease %s: %w", key, err)
	}
	exists := err == nil
	if !exists {
		lease = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[causewayv1alpha1.AnnotationNamespaces] = namespaces
	lease.Annotations[causewayv1alpha1.AnnotationAgentVersion] = l.version
	lease.Spec.HolderIdentity = ptr.To("causeway-agent/" + l.cluster)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(l.duration / time.Second))
	lease.Spec.RenewTime = &now
	if !exists {
		lease.Spec.AcquireTime = &now
		if err := l.hub.Create(ctx, &lease); err != nil {
			return fmt.Errorf("create lease %s: %w", key, err)
		}
		return nil
	}
	if err := l.hub.Update(ctx, &lease); err != nil {
		return fmt.Errorf("renew lease %s: %w", key, err)
	}
	return nil
}

func (l *leaseRenewer) namespaces(ctx context.Context) (string, error) {
	var list corev1.NamespaceList
	if err := l.member.List(ctx, &list); err != nil {
		return "", fmt.Errorf("list namespaces: %w", err)
	}
	names := make([]string, 0, len(list.Items))
	for _, ns := range list.Items {
		if ns.DeletionTimestamp == nil {
			names = append(names, ns.Name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ","), nil
}

// writeCounter counts the agent's writes to its member cluster, by kind and
// verb (bounded label values), as causeway_agent_writes_total.
type writeCounter struct{ vec *prometheus.CounterVec }

func newWriteCounter() *writeCounter {
	return &writeCounter{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_agent_writes_total",
		Help: "Writes the agent made to its member cluster, by kind and verb.",
	}, []string{"kind", "verb"})}
}

func (w *writeCounter) count(kind, verb string) { w.vec.WithLabelValues(kind, verb).Inc() }
