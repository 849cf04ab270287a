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

package v1alpha1

// Condition types and reasons shared by several kinds. Each kind also
// declares its own condition-type constants (for example MemberClusterReady)
// next to its type, so a reader of one kind sees all of its conditions.
//
// Every kind reports a summarising condition of type "Ready": True when the
// object is fully in effect, False with a reason and a human message
// otherwise. Tools such as `kubectl wait --for=condition=Ready` rely on it.
const (
	// ConditionTypeReady is the type of every kind's summarising condition.
	ConditionTypeReady = "Ready"

	// ConditionTypeAccepted is the type of the condition that a policy kind
	// uses to say whether the controller understood the object and found
	// everything it refers to (its target, for example).
	ConditionTypeAccepted = "Accepted"
)

// Reasons used in conditions. A reason is a CamelCase word for machines;
// the condition's message carries the details for people.
const (
	// ReasonAccepted means the object is valid and everything it refers to
	// exists.
	ReasonAccepted = "Accepted"

	// ReasonInvalid means the object is valid on its own but conflicts with
	// the state of the cluster (checks the API server cannot do at admission).
	ReasonInvalid = "Invalid"

	// ReasonTargetNotFound means the policy's targetRef names a Service or
	// ServiceImport that does not exist in the policy's namespace.
	ReasonTargetNotFound = "TargetNotFound"

	// ReasonConflicted means another policy of the same kind already applies
	// to the same target; the oldest policy wins, as with MCS exports.
	ReasonConflicted = "Conflicted"

	// ReasonProgrammed means the configuration has been sent to every data
	// plane that needs it.
	ReasonProgrammed = "Programmed"

	// ReasonPending means the controller has not finished acting on the
	// latest generation yet.
	ReasonPending = "Pending"
)
