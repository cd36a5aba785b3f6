from __future__ import absolute_import, division, print_function
from __future__ import annotations

__metaclass__ = type

import pytest

from ansible_collections.deckhouse.platform.plugins.module_utils import dkp_update_policies as p
from ansible_collections.deckhouse.platform.plugins.module_utils.dkp_client import ApiError, DkpError

BASE = dict(name="night", state="present", release_channel=None, mode=None, windows=None)


class Client:
    def __init__(self, configs=(), v1alpha1=None):
        self.configs = list(configs)
        self.v1alpha1 = v1alpha1
        self.requests = []

    def list(self, kind, **_kw):
        assert kind == "ModuleConfig"
        return self.configs, "1"

    def request(self, method, path, **_kw):
        self.requests.append(path)
        if self.v1alpha1 is None:
            raise ApiError(404, "NotFound", "not found")
        return {"resources": [{"name": n} for n in self.v1alpha1]}


def mc(name, policy):
    return {"metadata": {"name": name}, "spec": {"updatePolicy": policy} if policy else {}}


def test_configs_using_a_policy_and_the_refusal_name_them():
    client = Client([mc("console", "night"), mc("commander", "night"), mc("other", "day"), mc("x", None)])
    assert p.configs_using_policy(client, "night") == ["commander", "console"]
    assert p.users_by_policy(client) == {"night": ["commander", "console"], "day": ["other"]}
    msg = p.in_use_refusal("night", ["commander", "console"])
    assert "the 'night' update policy is used by the 'commander', 'console' module configs" in msg


@pytest.mark.parametrize("served, channel, refused", [
    (["moduleupdatepolicies", "modulesources"], "Lts", True),   # DKP 1.75
    (["modulesources"], "Lts", False),                          # DKP 1.76: v1alpha1 policies not served
    (None, "Lts", False),
    (["moduleupdatepolicies"], "Stable", False),
])
def test_lts_is_refused_where_dkp_has_no_lts(served, channel, refused):
    client = Client(v1alpha1=served)
    out = p.lts_refusal(client, dict(BASE, release_channel=channel))
    assert (out is not None) is refused
    if refused:
        assert "needs DKP 1.76" in out
    if channel != "Lts":
        assert client.requests == [], "only Lts costs a discovery request"


@pytest.mark.parametrize("windows, fragment", [
    ("1:00-4:30", "windows must be a list of windows"),
    ([{"from": "10:00", "to": "8:00"}], "Start time (windows.from) should be less"),
])
def test_bad_windows(windows, fragment):
    with pytest.raises(DkpError) as e:
        p.validate(dict(BASE, windows=windows))
    assert fragment in e.value.msg


def test_summary():
    obj = {"metadata": {"name": "night", "managedFields": [{}]},
           "spec": {"releaseChannel": "Stable", "update": {"mode": "Auto", "windows": [{"from": "1:00", "to": "2:00"}]}}}
    s = p.policy_summary(obj)
    assert (s["name"], s["release_channel"], s["mode"]) == ("night", "Stable", "Auto")
    assert s["windows"] == [{"from": "1:00", "to": "2:00"}] and "managedFields" not in s["object"]["metadata"]
