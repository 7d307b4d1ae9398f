# Load balancers and test hosts (deploy/haproxy, deploy/nginx,
# tests/deploy/test_haproxy.py, tests/deploy/test_netns.py): the real
# haproxy and nginx from Debian, iproute2 for network namespaces and veth,
# util-linux for prlimit and setpriv (haproxy under a low descriptor limit).
DEB_PACKAGES += haproxy nginx iproute2 util-linux
