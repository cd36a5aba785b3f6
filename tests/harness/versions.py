"""What differs between the DKP releases the local cluster models (1.75, 1.76).

The CRDs in tests/harness/crds are written as DKP 1.76 serves them; ``crds_for(version, docs)``
turns them into the other release's. The simulator reads ``Features`` for behaviour that
differs. Facts and upstream paths: tests/harness/README.md and docs/dkp-compatibility.md.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

DEFAULT = "1.76"
SUPPORTED = ("1.75", "1.76")
ENV = "DKP_VERSION"


@dataclass(frozen=True)
class Features:
    version: str
    deckhouse_version: str          # the patch release the facts were read from
    mup_v1alpha1_served: bool       # ModuleUpdatePolicy v1alpha1 (served: false from 1.76)
    lts_channel: bool               # releaseChannel `Lts` in ModuleUpdatePolicy v1alpha2 (1.76 only)
    webhook_422: bool               # ModuleConfig denials as 422 Invalid with details.causes (1.76)
    mpo_weight_and_deployed_on: bool  # MPO writes status.weight + annotation deployed-on (not in 1.76)
    release_size_and_duration: bool   # ModuleRelease status.size / pullDuration (not in 1.76)


FEATURES = {
    "1.75": Features("1.75", "v1.75.9", mup_v1alpha1_served=True, lts_channel=False, webhook_422=False,
                     mpo_weight_and_deployed_on=True, release_size_and_duration=True),
    "1.76": Features("1.76", "v1.76.8", mup_v1alpha1_served=False, lts_channel=True, webhook_422=True,
                     mpo_weight_and_deployed_on=False, release_size_and_duration=False),
}


def normalise(version: str | None) -> str:
    """'1.76', 'v1.76', '1.76.8' -> '1.76'; None/'' -> env DKP_VERSION or the default."""
    v = (version or os.environ.get(ENV) or DEFAULT).strip().lstrip("v")
    v = ".".join(v.split(".")[:2])
    if v not in FEATURES:
        raise ValueError(f"unsupported DKP version {version!r}; supported: {', '.join(SUPPORTED)}")
    return v


def features(version: str | None = None) -> Features:
    return FEATURES[normalise(version)]


def crds_for(version: str, docs: list[dict]) -> list[dict]:
    """The CRDs of `version` from the 1.76 manifests (copies; the input is not changed)."""
    f = features(version)
    out = []
    for doc in docs:
        doc = copy.deepcopy(doc)
        if doc.get("kind") == "CustomResourceDefinition" and \
                doc["metadata"]["name"] == "moduleupdatepolicies.deckhouse.io":
            for v in doc["spec"]["versions"]:
                if v["name"] == "v1alpha1":
                    v["served"] = f.mup_v1alpha1_served
                if v["name"] == "v1alpha2" and not f.lts_channel:
                    enum = v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["releaseChannel"]["enum"]
                    enum[:] = [e for e in enum if e != "Lts"]
        out.append(doc)
    return out
