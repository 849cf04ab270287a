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

package certmanager

import (
	"bytes"
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// managedAnnotations are the Secret annotations this package owns: a write
// sets them exactly as given and leaves every other annotation alone.
var managedAnnotations = []string{AnnotationCertificateRequest, AnnotationPendingRequest, AnnotationIssuer}

// writeSecret makes the Secret hold exactly data and the managed
// annotations annotations, creating it when sec is nil. It writes only on
// a difference, and an update carries sec's resourceVersion, so a
// concurrent change fails it (to be retried) rather than being
// overwritten. It returns the Secret as stored.
func (s *Source) writeSecret(ctx context.Context, sec *corev1.Secret, data map[string][]byte, annotations map[string]string) (*corev1.Secret, error) {
	secrets := s.cfg.Kube.CoreV1().Secrets(s.cfg.Secret.Namespace)
	if sec == nil {
		created, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   s.cfg.Secret.Namespace,
				Name:        s.cfg.Secret.Name,
				Labels:      map[string]string{LabelSecret: s.cfg.Secret.Name},
				Annotations: annotations,
			},
			// Opaque, not kubernetes.io/tls: while the first request is
			// in flight there is no tls.crt yet, which the API server
			// warns about on every write of a TLS Secret.
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create root CA Secret %s: %w", s.cfg.Secret, err)
		}
		return created, nil
	}
	next := sec.DeepCopy()
	next.Data = data
	next.Annotations = maps.Clone(sec.Annotations)
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	for _, k := range managedAnnotations {
		delete(next.Annotations, k)
	}
	maps.Copy(next.Annotations, annotations)
	if dataEqual(sec.Data, next.Data) && maps.Equal(sec.Annotations, next.Annotations) {
		return sec, nil
	}
	updated, err := secrets.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update root CA Secret %s: %w", s.cfg.Secret, err)
	}
	return updated, nil
}

// dataEqual reports whether two Secret data maps hold the same keys and
// bytes; a missing key and an empty value differ, as the API server keeps
// them apart.
func dataEqual(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}
