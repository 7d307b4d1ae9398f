# deploy/container.mk: containers (podman), Kubernetes manifests, Prometheus.
#
#   make container-image   base image from Debian (mmdebstrap | podman import,
#                          cached in build/container/) + localhost/voxline:latest
#   make deploy-check      promtool and the Kubernetes schema checks alone
#
# Tests: tests/deploy/test_container.py and tests/deploy/test_manifests.py
# (run by `make test-deploy`).

DEB_PACKAGES += podman podman-compose buildah mmdebstrap runc crun iptables \
	netavark aardvark-dns slirp4netns uidmap catatonit \
	prometheus python3-yaml python3-kubernetes

# The Kubernetes validator: kubernetes-models carries the API's OpenAPI schemas
# compiled into validators, so it checks offline once installed. Pinned.
K8S_NPM_DIR := build/npm
K8S_VALIDATOR := $(K8S_NPM_DIR)/node_modules/kubernetes-models/package.json
K8S_NPM_PKGS := kubernetes-models@5.1.0 yaml@2.9.1

$(K8S_VALIDATOR):
	@mkdir -p $(K8S_NPM_DIR)
	cd $(K8S_NPM_DIR) && npm install --no-audit --no-fund --silent --prefix . $(K8S_NPM_PKGS)
	@test -f $@

.PHONY: container-image deploy-check k8s-validator
k8s-validator: $(K8S_VALIDATOR)
test-deploy: $(K8S_VALIDATOR)

container-image: deps
	$(PYTHON) tests/deploy/container_util.py build

deploy-check: deps all $(K8S_VALIDATOR)
	VOXLINE_BIN=$(abspath $(BUILD)/bin) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/deploy/test_manifests.py $(PYTEST_ARGS)
