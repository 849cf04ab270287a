// Command stages prints kwok's default node and pod lifecycle stages as one
// multi-document YAML stream, for the kwok controller's --config flag. The
// stages come from kwok's own packages, so they always match the kwok
// version this module pins.
package main

import (
	"fmt"
	"os"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	docs := []string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for i := range docs {
		docs[i] = strings.TrimSpace(docs[i])
	}
	if _, err := fmt.Println(strings.Join(docs, "\n---\n")); err != nil {
		os.Exit(1)
	}
}
