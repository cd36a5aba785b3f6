"""A Deckhouse (DKP) simulator for the local test cluster.

It reconciles ModuleConfigs, Modules, ModuleSources, ModuleReleases, ModulePullOverrides
and the registry module's ``registry-state`` Secret like Deckhouse does, serves the
ModuleConfig admission webhook and Deckhouse's debug queue API, and takes orders from
tests through ``harness.simulator.control.SimulatorControl``.

Start it standalone with::

    PYTHONPATH=tests python -m harness.simulator --dir .local/cluster --kubeconfig .local/cluster/kubeconfig
"""
