#!/usr/bin/env bash
# Copyright 2026 The Causeway Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Regenerates the deepcopy functions of the API types in apis/ and the CRD
# manifests of the causeway-crds chart from the kubebuilder markers on those
# types. Run from the repository root; bin/controller-gen must exist (the
# Makefile builds it from the pinned tool module hack/tools/dev).
set -euo pipefail

controller_gen=bin/controller-gen
crd_dir=charts/causeway-crds/crds

if [[ ! -x "${controller_gen}" ]]; then
	echo "${controller_gen} not found: build it with" >&2
	echo "  go -C hack/tools/dev build -o \"\$PWD/bin/controller-gen\" sigs.k8s.io/controller-tools/cmd/controller-gen" >&2
	exit 1
fi

"${controller_gen}" object:headerFile=hack/boilerplate.go.txt paths=./apis/...

# Start from an empty directory so the manifest of a removed kind does not
# linger.
rm -f "${crd_dir}"/*.yaml
"${controller_gen}" crd paths=./apis/... output:crd:artifacts:config="${crd_dir}"
