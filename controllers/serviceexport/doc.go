// Package serviceexport is the agent's ServiceExport controller: it
// validates each ServiceExport of its cluster against its Service, sets the
// MCS conditions (Valid, Ready, Conflict) with the reasons mcs-api defines,
// and publishes an ExportRecord — the Service's ports, type, session
// affinity and ready endpoints — to the member's namespace on the hub.
// Endpoints whose pods accept HBONE tunnels (labelled
// causeway.dev/tunnel=hbone, or whose sidecars announced it to the xDS
// server: Reconciler.HBONEPods) are published with Tunnel=HBONE, so that
// sidecars in other clusters tunnel to them through the gateways.
//
// The reconciler is keyed by the service's namespace/name in the member
// cluster. Events from the hub (the hub's verdict on a record) map to the
// same key. It is level-triggered and uses no finalizer: a record whose
// ServiceExport is gone is deleted when its key is reconciled, and the
// hub-side informer's initial list enqueues every record at start-up, so
// exports withdrawn while the agent was down are cleaned up too.
// Pods whose tunnel label changes, and pods that join or leave HBONEPods
// (Reconciler.HBONEPodsChanged), map to the services whose EndpointSlices
// list them, through a cache index of slices by pod.
//
// Decide is pure (BuildRecord, Validate, conditions); act writes the record
// and the status only when they differ, so an agent restart with nothing
// changed writes nothing.
package serviceexport
