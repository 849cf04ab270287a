#!/usr/bin/env bash
# Copyright 2026 The Causeway Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Regenerates the deepcopy functions of the API types in apis/ and the CRD
# manifests of the causeway-crds chart from the kubebuilder markers on those
# types, and copies the Gateway API CRDs the agent reads (HTTPRoute,
# GRPCRoute, ReferenceGrant) from the sigs.k8s.io/gateway-api module that
# go.mod pins into charts/gateway-api. Run from the repository root;
# bin/controller-gen must exist (the Makefile builds it from the pinned tool
# module hack/tools/dev).
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

# Gateway API CRDs: the experimental channel, because HTTPRoute's retry
# field is experimental in the pinned release and the agent translates it.
gateway_dir=charts/gateway-api
gateway_module=sigs.k8s.io/gateway-api
gateway_src=$(go list -m -f '{{.Dir}}' "${gateway_module}")
gateway_version=$(go list -m -f '{{.Version}}' "${gateway_module}")
mkdir -p "${gateway_dir}"
rm -f "${gateway_dir}"/*.yaml
for kind in httproutes grpcroutes referencegrants; do
	file=gateway.networking.k8s.io_${kind}.yaml
	{
		echo "# Copied by hack/generate.sh from ${gateway_module} ${gateway_version} config/crd/experimental/${file}; do not edit."
		cat "${gateway_src}/config/crd/experimental/${file}"
	} >"${gateway_dir}/${file}"
done

# cert-manager CRDs of the cert-manager.io group (Certificate,
# CertificateRequest, Issuer, ClusterIssuer), from the
# github.com/cert-manager/cert-manager module go.mod pins: the tests that run
# cert-manager's own controllers against a test API server install them
# (package charts/cert-manager-crds embeds them; test/certmanager installs
# them). Production clusters get them from cert-manager's own installation,
# never from Causeway.
certmanager_dir=charts/cert-manager-crds
certmanager_module=github.com/cert-manager/cert-manager
certmanager_src=$(go list -m -f '{{.Dir}}' "${certmanager_module}")
certmanager_version=$(go list -m -f '{{.Version}}' "${certmanager_module}")
mkdir -p "${certmanager_dir}"
rm -f "${certmanager_dir}"/*.yaml
for kind in certificates certificaterequests issuers clusterissuers; do
	file=cert-manager.io_${kind}.yaml
	{
		echo "# Copied by hack/generate.sh from ${certmanager_module} ${certmanager_version} deploy/crds/${file}; do not edit."
		cat "${certmanager_src}/deploy/crds/${file}"
	} >"${certmanager_dir}/${file}"
done
