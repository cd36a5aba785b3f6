"""python -m harness.simulator --dir DIR --kubeconfig KUBECONFIG [options]"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading

PROFILES = {"test": 0.2, "demo": 1.0}
# seconds a Deckhouse self-restart lasts per profile (env DKP_SIM_RESTART_SECONDS overrides)
RESTART_SECONDS = {"test": 3.0, "demo": 12.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.simulator", description=__doc__)
    ap.add_argument("--dir", required=True, help="cluster directory; simulator.json is written here")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--profile", choices=sorted(PROFILES), default=os.environ.get("DKP_SIM_PROFILE", "test"),
                    help="timing profile: test (0.2 s steps) or demo (1 s steps)")
    ap.add_argument("--step-delay", type=float, default=None,
                    help="seconds per reconcile step (env DKP_SIM_STEP_DELAY; default from --profile)")
    ap.add_argument("--restart-seconds", "--restart-duration", dest="restart_seconds", type=float, default=None,
                    help="seconds a Deckhouse self-restart lasts: webhook refuses, debug API silent "
                         "(env DKP_SIM_RESTART_SECONDS; default 3 s, 12 s with --profile demo)")
    ap.add_argument("--dkp-version", default=os.environ.get("DKP_VERSION") or None,
                    help="DKP release to model: 1.75 or 1.76 (env DKP_VERSION; default 1.76)")
    ap.add_argument("--cluster-type", choices=["Static", "Cloud"],
                    default=os.environ.get("DKP_SIM_CLUSTER_TYPE", "Static"))
    ap.add_argument("--registry-enabled", action="store_true",
                    default=os.environ.get("DKP_SIM_REGISTRY_ENABLED", "") in ("1", "true", "yes"),
                    help="create ModuleConfig registry (enabled: true) on a fresh cluster")
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--webhook-port", type=int, default=0)
    ap.add_argument("--log-level", default=os.environ.get("DKP_SIM_LOG_LEVEL", "INFO"))
    args = ap.parse_args(argv)

    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    step = args.step_delay
    if step is None and os.environ.get("DKP_SIM_STEP_DELAY"):
        step = float(os.environ["DKP_SIM_STEP_DELAY"])
    if step is None:
        step = PROFILES[args.profile]

    restart = args.restart_seconds
    if restart is None and os.environ.get("DKP_SIM_RESTART_SECONDS"):
        restart = float(os.environ["DKP_SIM_RESTART_SECONDS"])
    if restart is None:
        restart = RESTART_SECONDS[args.profile]

    from harness import versions

    from .controller import Options, Simulator

    state_file = os.path.join(args.dir, "simulator.json")
    try:
        os.unlink(state_file)
    except FileNotFoundError:
        pass
    sim = Simulator(Options(args.dir, args.kubeconfig, step_delay=step, profile=args.profile,
                            cluster_type=args.cluster_type, restart_duration=restart,
                            dkp_version=versions.normalise(args.dkp_version),
                            registry_enabled=args.registry_enabled, control_port=args.control_port,
                            webhook_port=args.webhook_port))
    done = threading.Event()

    def stop(signum, _frame):
        logging.getLogger("simulator").info("signal %s: stopping", signum)
        done.set()

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sim.start()
    while not done.wait(1.0):
        pass
    sim.shutdown()
    try:
        with open(state_file, encoding="utf-8") as f:
            if f'"pid": {os.getpid()}' in f.read():
                os.unlink(state_file)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
