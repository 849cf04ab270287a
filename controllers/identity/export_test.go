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
package identity

// NodeCount is the number of nodes served, for tests.
func (s *SDSServer) NodeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.nodes)
}

// Revoked reports whether renewals of the nodes of a ServiceAccount
// stopped, for tests.
func (s *SDSServer) Revoked(namespace, serviceAccount string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.caller.Namespace == namespace && n.caller.ServiceAccount == serviceAccount && n.revoked {
			return true
		}
	}
	return false
}

// HasSnapshot reports whether the cache holds a snapshot for a node key.
func (s *SDSServer) HasSnapshot(key string) bool {
	_, err := s.cache.GetSnapshot(key)
	return err == nil
}
