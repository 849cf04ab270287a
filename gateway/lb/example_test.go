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

package lb_test

import (
	"fmt"

	"github.com/causeway-mesh/causeway/gateway/lb"
)

// A cluster whose local endpoints are all unhealthy fails over to the
// remote priority level; a retry avoids the endpoint already tried.
func Example() {
	eps := []lb.Endpoint{
		{Address: "10.0.0.1:8080", Priority: 0, Healthy: false, Cluster: "local"},
		{Address: "10.1.0.1:8080", Priority: 1, Healthy: true, Cluster: "remote"},
		{Address: "10.1.0.2:8080", Priority: 1, Healthy: true, Cluster: "remote"},
	}
	b, err := lb.New(lb.Config{Algorithm: lb.RingHash}, eps, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	req := lb.Request{Hash: lb.HashString("user-42"), HasHash: true}
	first, err := b.Pick(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	first.Done() // the try failed

	tried := first.Endpoint.Address
	req.Avoid = func(address string) bool { return address == tried }
	retry, err := b.Pick(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer retry.Done()

	fmt.Println(first.Endpoint.Cluster, retry.Endpoint.Cluster, retry.Endpoint.Address != tried)
	// Output: remote remote true
}
