"""Fixtures shared by the integration tests (the cluster fixtures live in tests/conftest.py)."""
from __future__ import annotations

import pytest

from harness import cluster


@pytest.fixture
def kc(dkp_cluster):
    """Kubeconfig path of the local DKP cluster."""
    return dkp_cluster.kubeconfig


@pytest.fixture
def api(kube):
    """CustomObjectsApi for the deckhouse.io objects (admin)."""
    from kubernetes import client
    return client.CustomObjectsApi(kube)


@pytest.fixture(scope="session")
def bare_cluster(tmp_path_factory):
    """Kubeconfig of a real kube-apiserver that serves no deckhouse.io kinds (a plain Kubernetes cluster)."""
    from kubernetes import client, config

    d = tmp_path_factory.mktemp("bare-cluster")
    info = cluster.up(d, quiet=True, simulator=False)
    try:
        api = client.ApiextensionsV1Api(config.new_client_from_config(str(info.kubeconfig)))
        for crd in api.list_custom_resource_definition().items:
            if crd.spec.group == "deckhouse.io":
                api.delete_custom_resource_definition(crd.metadata.name)
        yield info.kubeconfig
    finally:
        cluster.down(d, quiet=True)
