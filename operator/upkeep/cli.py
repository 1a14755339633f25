"""The ``upkeep`` command: validate manifests, run the operator, steer incidents, approve playbook runs, print the CRDs.

Exit codes are the same for every subcommand: 0 success, 1 the thing checked is invalid
or the operator failed (or refused what was asked), 2 a usage error (bad flags, a path that
does not exist), 3 the operator did not act in time on what was asked (``upkeep incident``,
``upkeep playbookrun approve --wait``), or, for ``upkeep plan``, the change has changes to show.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from upkeep import __version__
from upkeep import settings as settings_

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

_DESCRIPTION = """\
Upkeep runs the production support of a live product as Kubernetes resources: gated
releases, change requests, incidents, problems and remediation playbooks, against the
declared state in git. Resources: kubectl get upkeep (after kubectl apply -f crds/).
"""

_EPILOG = """\
examples:
  upkeep validate examples/                 check every manifest under examples/
  upkeep crds | kubectl apply -f -          install the CustomResourceDefinitions
  upkeep run --namespace shop --dry-run     watch one namespace; record, never act
  upkeep incident ack shop-crashloop-8e3447ff -n shop --note "looking at it"

Run `upkeep COMMAND --help` for a command's options."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with EXIT_USAGE and say how to get help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\nTry `{self.prog} --help`.\n")
        raise SystemExit(EXIT_USAGE)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


def _command_group(
    commands: Any, name: str, *, help: str, description: str, epilog: str
) -> tuple[argparse.ArgumentParser, Any]:
    """A command with actions of its own (``upkeep NAME ACTION``); alone it prints its help and exits 2."""
    group: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=_formatter
    )
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION", parser_class=_Parser)

    def group_help(args: argparse.Namespace) -> int:
        group.print_help(sys.stderr)
        return EXIT_USAGE

    group.set_defaults(handler=group_help)
    return group, actions


def _build_parser() -> _Parser:
    parser = _Parser(prog="upkeep", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_formatter)
    parser.add_argument("--version", action="version", version=f"upkeep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser(
        "validate",
        help="check manifests against Upkeep's schemas, its semantic rules and Kubernetes' schemas",
        description=(
            "Check YAML manifests (files or directories, several documents per file) as one set:\n"
            "Upkeep's kinds against the schemas in crds/, the rules a schema cannot express\n"
            "(references between the objects, cron expressions, time zones, durations, playbook\n"
            "actions and their params), and Kubernetes' built-in kinds against its published\n"
            "schemas. Every error names the file, the document, the line and the field."
        ),
        epilog=(
            "examples:\n"
            "  upkeep validate examples/\n"
            "  upkeep validate release.yaml policies/ --output json\n\n"
            "exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error"
        ),
        formatter_class=_formatter,
    )
    validate.add_argument("paths", nargs="+", metavar="PATH", type=Path, help="a YAML file or a directory of them")
    validate.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text for people, json for CI (default: text)",
    )
    validate.add_argument(
        "--kubernetes-version",
        metavar="X.Y",
        default=None,
        help="the Kubernetes version whose schemas check built-in kinds (default: the newest known)",
    )
    validate.set_defaults(handler=_validate)

    run = commands.add_parser(
        "run",
        help="run the operator against the cluster of the current kubeconfig",
        description=(
            "Start the operator (on Kopf) against the cluster of the current kubeconfig, or the\n"
            "in-cluster service account when run in a pod. It watches Upkeep's resources and\n"
            "writes their status and Events. Stop it with Ctrl-C (SIGINT) or SIGTERM."
        ),
        epilog=(
            "examples:\n"
            "  upkeep run --namespace shop --standalone\n"
            "  upkeep run --all-namespaces --dry-run\n"
            "  upkeep run -A --liveness http://0.0.0.0:8080/healthz   (in a pod)"
        ),
        formatter_class=_formatter,
    )
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeat for more; glob patterns like 'team-*' allowed)",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="log and record (as Events) every action but execute none: no Incident is written",
    )
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no peering: act as the only replica")
    peering.add_argument(
        "--peering", metavar="NAME", default=None, help="the KopfPeering object replicas coordinate through"
    )
    run.add_argument(
        "--priority", type=int, default=0, help="peering priority; the highest among peers acts (default: 0)"
    )
    run.add_argument(
        "--liveness",
        metavar="URL",
        default=settings_.HealthSettings().liveness_endpoint,
        help="liveness endpoint (default: %(default)s); 'none' to serve none",
    )
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=settings_.HttpSettings().listen,
        help="serve /metrics and the webhook receivers here (default: %(default)s); 'none' to serve nothing",
    )
    run.add_argument(
        "--run-lease",
        metavar="SECONDS",
        type=_positive_seconds,
        default=settings_.RemediationSettings().run_lease,
        help=(
            "how long a PlaybookRun's lease holds without renewal: another process (or this one restarted)"
            " takes a run over after this (default: %(default)s)"
        ),
    )
    run.add_argument(
        "--git-cache",
        metavar="DIR",
        default=None,
        help="where fetched git repositories are cached (default: $XDG_CACHE_HOME/upkeep-git or ~/.cache/upkeep-git)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="log at debug level")
    run.set_defaults(handler=_run)

    _, sandbox_commands = _command_group(
        commands,
        "sandbox",
        help="run the embedded Kubernetes-compatible sandbox cluster",
        description=(
            "The sandbox is a Kubernetes API server in Python that kubectl, Kopf and the Python client\n"
            "use unchanged. It is the cluster of the demo and of the tests. It listens on 127.0.0.1 only."
        ),
        epilog=(
            "examples:\n"
            "  upkeep sandbox up                         in the foreground; Ctrl-C stops it\n"
            "  upkeep sandbox up --detach --state .sandbox\n"
            "  export KUBECONFIG=~/.upkeep/sandbox/kubeconfig; kubectl get namespaces\n"
            "  upkeep sandbox status\n"
            "  upkeep sandbox down"
        ),
    )
    home_help = "where the run file and default kubeconfig live (default: $UPKEEP_SANDBOX_HOME or ~/.upkeep/sandbox)"
    up = sandbox_commands.add_parser(
        "up",
        help="start a sandbox and write a kubeconfig for it",
        description="Start a sandbox on 127.0.0.1 and write a kubeconfig (context upkeep-sandbox) with a bearer token.",
        epilog="examples:\n  upkeep sandbox up --port 0\n  upkeep sandbox up --state .sandbox --detach",
        formatter_class=_formatter,
    )
    up.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default: 0)")
    up.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep every object in DIR (SQLite) across restarts; without it, state is in memory",
    )
    up.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write the kubeconfig (default: HOME/kubeconfig)",
    )
    up.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help='more users: a static token file, lines of token,user,uid,"group1,group2"',
    )
    up.add_argument("--detach", action="store_true", help="run in the background and return once it answers")
    up.add_argument("--nodes", type=int, default=3, help="simulated nodes to register (default: 3; 0: none)")
    up.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve the simulated cluster's Prometheus metrics on http://127.0.0.1:N/metrics (0 picks a port)",
    )
    up.add_argument(
        "--simulation",
        type=Path,
        default=None,
        metavar="FILE",
        help="simulation settings (YAML: durations, node sizes; `profile: fast` shrinks every delay)",
    )
    up.add_argument(
        "--fast", action="store_true", help="run the simulation fast: seconds become tenths (for demos and tests)"
    )
    up.add_argument(
        "--api-only", action="store_true", help="serve the API only: no nodes, scheduler, kubelets or controllers"
    )
    up.add_argument(
        "--admin",
        action="store_true",
        help="serve the fault endpoint that `upkeep sandbox fault` uses (off by default)",
    )
    up.add_argument("--home", type=Path, default=None, help=home_help)
    up.set_defaults(handler=_sandbox_up)
    down = sandbox_commands.add_parser(
        "down",
        help="stop the running sandbox",
        description="Stop the sandbox that HOME's run file names.",
        epilog="example:\n  upkeep sandbox down",
        formatter_class=_formatter,
    )
    down.add_argument("--home", type=Path, default=None, help=home_help)
    down.set_defaults(handler=_sandbox_down)
    fault = sandbox_commands.add_parser(
        "fault",
        help="inject a fault into a running sandbox (it must run with --admin)",
        description=(
            "Inject a fault into the running sandbox, as a real cluster can misbehave.\n"
            "api TYPE:      unavailable | throttle (503 | 429 with Retry-After, for --seconds),\n"
            "               latency (--latency-ms, for --seconds), drop-watches, compact (resumes get 410), clear\n"
            "workload TYPE KIND/NAME -n NS:\n"
            "               crashloop | imagepull | oom | unready: the workload's pods are replaced by faulty ones;\n"
            "               clear: containers behave as their image says again from their next start\n"
            "pod TYPE NAME -n NS:\n"
            "               crashloop | imagepull | oom | unready (from the container's next start), clear,\n"
            "               kill (the container dies with exit 137 and restarts; -c names the container)\n"
            "node down|up NAME: the node's kubelet stops (NotReady, then its pods are evicted) or comes back"
        ),
        epilog=(
            "examples:\n"
            "  upkeep sandbox fault api unavailable --seconds 5\n"
            "  upkeep sandbox fault workload crashloop deployment/web -n shop\n"
            "  upkeep sandbox fault pod kill web-7d4b9c-x2k8p -n shop\n"
            "  upkeep sandbox fault node down sandbox-node-2"
        ),
        formatter_class=_formatter,
    )
    fault.add_argument("scope", choices=("api", "workload", "pod", "node"), help="what to break")
    fault.add_argument("type", help="the fault (see above)")
    fault.add_argument("target", nargs="?", default=None, help="KIND/NAME of a workload, a pod's or a node's name")
    fault.add_argument("--namespace", "-n", default="default", help="the namespace of the workload or pod")
    fault.add_argument("--container", "-c", default=None, help="pod kill: the container to kill")
    fault.add_argument("--seconds", type=float, default=10.0, help="api faults: how long the fault lasts (default: 10)")
    fault.add_argument("--latency-ms", type=float, default=200.0, help="api latency: the delay (default: 200)")
    fault.add_argument("--home", type=Path, default=None, help=home_help)
    fault.set_defaults(handler=_sandbox_fault)
    state = sandbox_commands.add_parser(
        "status",
        help="say whether a sandbox runs, where, and with which kubeconfig",
        description="Say whether the sandbox of HOME runs and answers. Exit 0 when it does, 1 when not.",
        epilog="example:\n  upkeep sandbox status",
        formatter_class=_formatter,
    )
    state.add_argument("--home", type=Path, default=None, help=home_help)
    state.set_defaults(handler=_sandbox_status)

    _add_incident_commands(commands)
    _add_playbookrun_commands(commands)
    _add_plan_command(commands)

    crds = commands.add_parser(
        "crds",
        help="print Upkeep's CustomResourceDefinitions as YAML",
        description="Print the CustomResourceDefinitions this version of Upkeep ships, as one YAML stream.",
        epilog="example:\n  upkeep crds | kubectl apply -f -",
        formatter_class=_formatter,
    )
    crds.set_defaults(handler=_crds)
    return parser


def _validate(args: argparse.Namespace) -> int:
    from upkeep.gitops import validation

    try:
        report = validation.validate_paths(args.paths, kubernetes_version=args.kubernetes_version)
    except FileNotFoundError as error:
        sys.stderr.write(f"upkeep validate: {error}\n")
        return EXIT_USAGE
    except Exception as error:
        if type(error).__name__ == "VersionNotSupportedError":
            sys.stderr.write(f"upkeep validate: --kubernetes-version: {error}\n")
            return EXIT_USAGE
        raise
    if args.output == "json":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for finding in report.findings:
            sys.stdout.write(finding.render() + "\n")
        verdict = "valid" if report.ok else "invalid"
        sys.stdout.write(
            f"{verdict}: {report.files} files, {report.documents} documents, "
            f"{len(report.errors)} errors, {len(report.warnings)} warnings\n"
        )
    return EXIT_OK if report.ok else EXIT_INVALID


def _settings_from(args: argparse.Namespace) -> settings_.OperatorSettings:
    liveness = None if str(args.liveness).lower() == "none" else args.liveness
    listen = None if str(args.http).lower() == "none" else args.http
    return settings_.OperatorSettings(
        scope=settings_.ScopeSettings(namespaces=tuple(args.namespace), all_namespaces=args.all_namespaces),
        safety=settings_.SafetySettings(dry_run=args.dry_run),
        peering=settings_.PeeringSettings(standalone=args.standalone, name=args.peering, priority=args.priority),
        health=settings_.HealthSettings(liveness_endpoint=liveness),
        http=settings_.HttpSettings(listen=listen),
        remediation=settings_.RemediationSettings(run_lease=args.run_lease),
        gitops=settings_.GitOpsSettings(cache_dir=args.git_cache),
    )


def _positive_seconds(text: str) -> float:
    """A number of seconds above zero (argparse's usage error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    return value


GC_THRESHOLDS = (50_000, 20, 10)
"""The collector's thresholds in the long-running processes (``upkeep run``, ``upkeep sandbox up``)."""


def _tune_garbage_collector() -> None:
    """Collect cyclic garbage less often in a long-running process, and never look at what start-up made again.

    With Python's defaults (700, 10, 10) a busy operator or sandbox runs the young collection every few hundred
    allocations and a full one, over every object the process holds, every few seconds: under a hundred
    incidents at once, a tenth of each process's time and pauses of 150-200 ms in which no watch event is read
    and no request answered. Everything alive after start-up (modules, the CRD schemas, compiled rules) is
    frozen out of the collections (``gc.freeze``), and the young generation holds 50,000 objects before it is
    collected. bench/remediation.py: failure → first action p99 from about 2.3 s to about 1.4 s.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _run(args: argparse.Namespace) -> int:
    import kopf

    from upkeep import controllers

    settings = _settings_from(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Kopf logs every handler run at INFO ("Handler ... succeeded"): one line per watched change.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("kopf.activities").setLevel(logging.WARNING)  # "Activity '...' succeeded" at start
    if settings.safety.dry_run:
        logging.getLogger("upkeep").warning("dry run: actions are recorded, none is executed")
    registry = kopf.OperatorRegistry()
    controllers.register(registry, settings)
    problem = _cluster_credentials_problem()
    if problem:
        sys.stderr.write(
            f"upkeep run: no cluster to run against: {problem}\n"
            "Point KUBECONFIG (or ~/.kube/config) at a cluster's kubeconfig, or run in a pod with a service account.\n"
        )
        return EXIT_INVALID
    _tune_garbage_collector()
    _run_kopf(kopf, registry, settings)
    return EXIT_OK


def _cluster_credentials_problem() -> str | None:
    """Why no credentials can be found (in-cluster, then kubeconfig), or None when some can."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return None
    except config.ConfigException:
        pass
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    except (config.ConfigException, FileNotFoundError, OSError) as error:
        return str(error) or type(error).__name__
    return None


def _run_kopf(kopf: Any, registry: Any, settings: settings_.OperatorSettings) -> None:
    kopf.run(
        registry=registry,
        clusterwide=settings.scope.all_namespaces,
        namespaces=settings.scope.namespaces,
        standalone=settings.peering.standalone or None,
        peering_name=settings.peering.name,
        priority=settings.peering.priority,
        liveness_endpoint=settings.health.liveness_endpoint,
        memo=kopf.Memo(settings=settings),
    )


def _sandbox_home(args: argparse.Namespace) -> Path:
    from upkeep.sandbox import runner

    return Path(args.home) if args.home else runner.default_home()


def _sandbox_up(args: argparse.Namespace) -> int:
    import subprocess
    import time

    from upkeep.sandbox import runner

    home = _sandbox_home(args)
    running = runner.read_run_file(home)
    if running is not None:
        sys.stderr.write(
            f"upkeep sandbox up: a sandbox already runs at {running.url} (pid {running.pid}); "
            f"`upkeep sandbox down` stops it\n"
        )
        return EXIT_INVALID
    if not args.detach:
        _tune_garbage_collector()
        runner.serve(
            port=args.port,
            state=args.state,
            kubeconfig=args.kubeconfig,
            home=home,
            token_file=args.token_file,
            admin=args.admin,
            simulation=_simulation_settings(args),
            metrics_port=args.metrics_port,
        )
        return EXIT_OK
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "upkeep.cli", "sandbox", "up", "--port", str(args.port), "--home", str(home)]
    for flag, value in (("--state", args.state), ("--kubeconfig", args.kubeconfig), ("--token-file", args.token_file)):
        if value is not None:
            command += [flag, str(value)]
    if args.admin:
        command.append("--admin")
    if args.fast:
        command.append("--fast")
    if args.api_only:
        command.append("--api-only")
    if args.simulation is not None:
        command += ["--simulation", str(args.simulation)]
    command += ["--nodes", str(args.nodes)]
    if args.metrics_port is not None:
        command += ["--metrics-port", str(args.metrics_port)]
    log = (home / "sandbox.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = runner.read_run_file(home)
        if found is not None and found.pid == process.pid and runner.ready(found.url):
            print(f"sandbox: Kubernetes API on {found.url} (pid {found.pid}, log {home / 'sandbox.log'})")
            print(f"  export KUBECONFIG={found.kubeconfig}")
            print("  kubectl get namespaces")
            return EXIT_OK
        if process.poll() is not None:
            break
        time.sleep(0.1)
    log.close()
    tail = (home / "sandbox.log").read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
    sys.stderr.write(f"upkeep sandbox up: the sandbox did not start; the end of {home / 'sandbox.log'}:\n")
    sys.stderr.write("".join(f"  {line}\n" for line in tail))
    return EXIT_INVALID


def _simulation_settings(args: argparse.Namespace) -> Any:
    """The simulation the flags ask for, or None for an API server alone."""
    import dataclasses

    from upkeep.sandbox.simulation.settings import SimulationSettings

    if args.api_only:
        return None
    if args.simulation is not None:
        settings = SimulationSettings.from_file(args.simulation)
    else:
        settings = SimulationSettings.fast() if args.fast else SimulationSettings()
    return dataclasses.replace(settings, nodes=args.nodes)


def _sandbox_down(args: argparse.Namespace) -> int:
    import os
    import signal
    import time

    from upkeep.sandbox import runner

    home = _sandbox_home(args)
    running = runner.read_run_file(home)
    if running is None:
        print(f"sandbox: none is running (home {home})")
        return EXIT_OK
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and runner.read_run_file(home) is not None:
        time.sleep(0.1)
    if runner.read_run_file(home) is not None:
        sys.stderr.write(f"upkeep sandbox down: pid {running.pid} did not stop within 15 s\n")
        return EXIT_INVALID
    print(f"sandbox: stopped (pid {running.pid})")
    return EXIT_OK


def _sandbox_fault(args: argparse.Namespace) -> int:
    from upkeep.sandbox import runner

    home = _sandbox_home(args)
    running = runner.read_run_file(home)
    if running is None:
        sys.stderr.write(f"upkeep sandbox fault: no sandbox runs (home {home})\n")
        return EXIT_INVALID
    try:
        body = _fault_body(args)
    except ValueError as error:
        sys.stderr.write(f"upkeep sandbox fault: {error}\n")
        return EXIT_USAGE
    try:
        answer = runner.post_fault(running.url, running.token, body)
    except RuntimeError as error:
        sys.stderr.write(f"upkeep sandbox fault: {error}\n")
        return EXIT_INVALID
    print("sandbox: fault " + ", ".join(f"{key}={value}" for key, value in answer.items()))
    return EXIT_OK


def _fault_body(args: argparse.Namespace) -> dict[str, object]:
    """The fault endpoint's JSON for the command line; ValueError says what is missing."""
    api_types = ("unavailable", "throttle", "latency", "drop-watches", "compact", "clear")
    behaviours = ("crashloop", "imagepull", "oom", "unready")
    if args.scope == "api":
        if args.type not in api_types:
            raise ValueError(f"api faults are {', '.join(api_types)} (got {args.type!r})")
        return {"type": args.type, "seconds": args.seconds, "latencyMs": args.latency_ms}
    if not args.target:
        raise ValueError(
            f"a {args.scope} fault needs its target: "
            + {"workload": "KIND/NAME, e.g. deployment/web", "pod": "the pod's name", "node": "the node's name"}[
                args.scope
            ]
        )
    if args.scope == "node":
        if args.type not in ("down", "up"):
            raise ValueError(f"node faults are down and up (got {args.type!r})")
        return {"type": f"node-{args.type}", "node": args.target}
    where = {"namespace": args.namespace, "workload" if args.scope == "workload" else "pod": args.target}
    if args.type == "clear":
        return {"type": "clear-pod-faults", **where}
    if args.scope == "pod" and args.type == "kill":
        body: dict[str, object] = {"type": "pod-kill", **where}
        if args.container:
            body["container"] = args.container
        return body
    if args.type not in behaviours:
        allowed = [*behaviours, "clear"] + (["kill"] if args.scope == "pod" else [])
        raise ValueError(f"{args.scope} faults are {', '.join(allowed)} (got {args.type!r})")
    return {"type": args.type, **where}


def _sandbox_status(args: argparse.Namespace) -> int:
    from upkeep.sandbox import runner

    home = _sandbox_home(args)
    running = runner.read_run_file(home)
    if running is None:
        print(f"sandbox: not running (home {home})")
        return EXIT_INVALID
    answering = runner.ready(running.url)
    print(f"sandbox: {'running' if answering else 'not answering'} at {running.url} (pid {running.pid})")
    print(f"  export KUBECONFIG={running.kubeconfig}")
    return EXIT_OK if answering else EXIT_INVALID


def _crds(args: argparse.Namespace) -> int:
    from upkeep.model import schemas

    sys.stdout.write(yaml.safe_dump_all(schemas.crd_documents(), sort_keys=False))
    return EXIT_OK


# upkeep incident: people's requests for an Incident's phase, as the operator reads them

_INCIDENT_MOVES = {"ack": "Acknowledged", "resolve": "Resolved", "close": "Closed"}
"""Action → the phase it asks for in spec.state."""
_INCIDENT_FIELD_MANAGER = "upkeep-cli"
_INCIDENT_WAIT_INTERVAL = 0.2
"""Seconds between looks at the Incident while waiting for the operator (a CLI's poll, not a test's sleep)."""


def _add_incident_commands(commands: Any) -> None:
    _, actions = _command_group(
        commands,
        "incident",
        help="acknowledge, resolve or close an Incident (as kubectl patch of spec.state does); list them",
        description=(
            "People steer an Incident through spec.state (the phase they ask for) and spec.note (why);\n"
            "the operator checks the move, records it in status.timeline with who asked, and moves\n"
            "status.phase. These commands write the request the way docs/incidents.md shows for kubectl,\n"
            "check the move against the lifecycle first, and wait until the operator has applied it."
        ),
        epilog=(
            "examples:\n"
            "  upkeep incident list -n shop\n"
            '  upkeep incident ack shop-crashloop-8e3447ff -n shop --note "looking at it"\n'
            '  upkeep incident resolve shop-crashloop-8e3447ff -n shop --note "fixed in 1.2" --by alice\n'
            "  upkeep incident close shop-crashloop-8e3447ff -n shop"
        ),
    )
    verbs = {"ack": "acknowledge", "resolve": "resolve", "close": "close"}
    for action, phase in _INCIDENT_MOVES.items():
        move = actions.add_parser(
            action,
            help=f"{verbs[action]} an Incident: spec.state={phase}",
            description=(
                f"Ask for {phase}: a merge patch of spec.state={phase} and spec.note (field manager\n"
                f"{_INCIDENT_FIELD_MANAGER}), with the annotation upkeep.dev/requested-by naming who asks. The move\n"
                "is checked against the incident's status.phase first (the lifecycle in docs/resources.md);\n"
                "a move it does not allow is refused and nothing is written. Then the command waits until\n"
                "the operator has applied the request (status.observedGeneration) and prints the phase."
            ),
            epilog=(
                "examples:\n"
                f'  upkeep incident {action} shop-crashloop-8e3447ff -n shop --note "..."\n'
                f"  upkeep incident {action} shop-crashloop-8e3447ff -n shop --by alice --no-wait\n"
                f"  upkeep incident {action} shop-crashloop-8e3447ff -n shop --dry-run\n\n"
                "the same with kubectl:\n"
                f"  kubectl patch incident shop-crashloop-8e3447ff -n shop --type merge -p \\\n"
                f'    \'{{"metadata":{{"annotations":{{"upkeep.dev/requested-by":"alice"}}}},'
                f'"spec":{{"state":"{phase}","note":"..."}}}}\'\n\n'
                "exit status: 0 done (or already so), 1 refused (the lifecycle, the API server or the\n"
                "operator said no; or no such incident, or no cluster), 2 usage error, 3 the operator did\n"
                "not apply the request within --timeout (is `upkeep run` watching the namespace?)"
            ),
            formatter_class=_formatter,
        )
        move.add_argument("name", metavar="NAME", help="the Incident's name")
        _incident_target_options(move)
        move.add_argument("--note", default=None, help="why, recorded in the timeline with the move (spec.note)")
        move.add_argument(
            "--by",
            metavar="WHO",
            default=None,
            help="who asks, as the timeline records it (default: the kubeconfig's user, else $USER)",
        )
        move.add_argument(
            "--dry-run",
            action="store_true",
            help="send the request with dryRun=All: the API server checks it, nothing is written",
        )
        move.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="wait until the operator has applied the request (default: wait)",
        )
        move.add_argument(
            "--timeout",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="how long to wait for the operator (default: %(default)s)",
        )
        move.set_defaults(handler=_incident_move, target=phase)
    listing = actions.add_parser(
        "list",
        help="list Incidents: severity, phase, service, occurrences, age",
        description="List the Incidents of a namespace (or of all), newest last.",
        epilog=(
            "examples:\n  upkeep incident list -n shop\n  upkeep incident list -A\n\n"
            "exit status: 0 listed, 1 no cluster"
        ),
        formatter_class=_formatter,
    )
    _incident_target_options(listing)
    listing.add_argument("--all-namespaces", "-A", action="store_true", help="list the Incidents of every namespace")
    listing.set_defaults(handler=_incident_list)


def _incident_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace", "-n", default=None, metavar="NS", help="the namespace (default: the kubeconfig context's)"
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        metavar="FILE",
        help="the kubeconfig (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument("--context", default=None, metavar="NAME", help="the kubeconfig context (default: current)")


class _NoCluster(Exception):
    """No credentials for a cluster could be found; the message says what was tried."""


def _incident_client(args: argparse.Namespace) -> tuple[Any, str, str]:
    """(ApiClient, default namespace, user) found as ``upkeep run`` finds them: in-cluster, else the kubeconfig."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if args.kubeconfig is None and args.context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            pass
        else:
            account = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            namespace = account.read_text(encoding="utf-8").strip() if account.exists() else ""
            return client.ApiClient(configuration), namespace, ""
    file = str(args.kubeconfig) if args.kubeconfig is not None else None
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=file, context=args.context, client_configuration=configuration
        )
        contexts, active = config.list_kube_config_contexts(config_file=file)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as error:
        raise _NoCluster(str(error) or type(error).__name__) from None
    if args.context is not None:
        active = next((item for item in contexts if item.get("name") == args.context), active)
    context = (active or {}).get("context") or {}
    return client.ApiClient(configuration), str(context.get("namespace") or ""), str(context.get("user") or "")


def _request_failed(prog: str, kind: str, name: str, namespace: str, error: Exception) -> int:
    """Say why a request about one object failed (not found, the API's message, no cluster); EXIT_INVALID."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException) and error.status == 404:
        sys.stderr.write(f'{prog}: {kind} "{name}" not found in namespace "{namespace}"\n')
    elif isinstance(error, ApiException):
        sys.stderr.write(f"{prog}: {_api_message(error)}\n")
    else:
        sys.stderr.write(f"{prog}: cannot reach the cluster: {error}\n")
    return EXIT_INVALID


def _api_message(error: Any) -> str:
    """The message of the API server's Status in a client ApiException (its reason when there is none)."""
    try:
        found = json.loads(error.body or "{}").get("message")
    except (TypeError, ValueError):
        found = None
    return str(found or f"{error.status} {error.reason}")


def _incident_move(args: argparse.Namespace) -> int:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    from upkeep import GROUP, VERSION
    from upkeep.controllers import incidents as incident_controller
    from upkeep.model import errors, lifecycle

    prog = f"upkeep incident {args.incident_command}"
    if args.timeout <= 0:
        sys.stderr.write(f"{prog}: --timeout must be more than 0 seconds\n")
        return EXIT_USAGE
    try:
        api_client, default_namespace, user = _incident_client(args)
    except _NoCluster as error:
        sys.stderr.write(f"{prog}: no cluster to talk to: {error}\n")
        return EXIT_INVALID
    namespace = args.namespace or default_namespace or "default"
    who = args.by or user or os.environ.get("USER") or "unknown"
    target: str = args.target
    note = args.note or None
    api = client.CustomObjectsApi(api_client)

    def read() -> dict[str, Any]:
        answer: Any = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "incidents", args.name, _preload_content=False
        )
        found: dict[str, Any] = json.loads(answer.data)
        return found

    def write(patch: Mapping[str, Any]) -> dict[str, Any]:
        answer: Any = api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "incidents",
            args.name,
            dict(patch),
            field_manager=_INCIDENT_FIELD_MANAGER,
            dry_run="All" if args.dry_run else None,
            _preload_content=False,
        )
        found: dict[str, Any] = json.loads(answer.data)
        return found

    try:
        for _ in range(5):
            body = read()
            spec, status = body.get("spec") or {}, body.get("status") or {}
            before = status.get("phase") or None
            try:
                # An incident the operator has not taken in yet is about to start Triggered.
                lifecycle.check_transition("Incident", before or lifecycle.INCIDENT.initial, target, field="spec.state")
            except errors.InvalidTransition as refused:
                sys.stderr.write(f"{prog}: {args.name}: {refused}; nothing was changed\n")
                return EXIT_INVALID
            if before == target:
                print(f"incident/{args.name} is already {target}")
                return EXIT_OK
            version = body["metadata"]["resourceVersion"]
            annotations = {incident_controller.REQUESTED_BY_ANNOTATION: who}
            wanted = {"state": target, "note": note}
            try:
                if spec.get("state") == target and (spec.get("note") or None) == note and not args.dry_run:
                    # The same request again (e.g. after a reopen): the spec would not change, so no new
                    # generation would make the operator look. Withdraw it first, then ask again.
                    withdrawn = write({"metadata": {"resourceVersion": version}, "spec": {"state": None}})
                    version = withdrawn["metadata"]["resourceVersion"]
                written = write({"metadata": {"annotations": annotations, "resourceVersion": version}, "spec": wanted})
            except ApiException as error:
                if error.status == 409:
                    continue  # changed since read: check the move again against the new phase
                raise
            break
        else:
            sys.stderr.write(f"{prog}: {args.name} kept changing while the request was written; try again\n")
            return EXIT_INVALID
    except (ApiException, OSError, TransportError) as error:
        return _request_failed(prog, "incident", args.name, namespace, error)
    if args.dry_run:
        print(
            f"incident/{args.name}: {before or 'Triggered'} → {target} by {who} would be asked "
            "(dry run: nothing was written)"
        )
        return EXIT_OK
    if not args.wait:
        print(f"incident/{args.name}: asked for {target} (by {who}); the operator applies it")
        return EXIT_OK
    return _incident_wait(
        prog, args.name, namespace, read, int(written["metadata"].get("generation") or 0), target, args.timeout
    )


def _incident_wait(
    prog: str,
    name: str,
    namespace: str,
    read: Callable[[], dict[str, Any]],
    generation: int,
    target: str,
    timeout: float,
) -> int:
    """Wait until the operator has observed ``generation``; say what it made of the request."""
    import time

    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    deadline = time.monotonic() + timeout
    while True:
        try:
            body = read()
        except ApiException as error:
            sys.stderr.write(f"{prog}: {_api_message(error)}\n")
            return EXIT_INVALID
        except (OSError, TransportError) as error:
            sys.stderr.write(f"{prog}: cannot reach the cluster: {error}\n")
            return EXIT_INVALID
        status = body.get("status") or {}
        if int(status.get("observedGeneration") or 0) >= generation:
            if status.get("phase") == target:
                timeline = status.get("timeline") or [{}]
                last = timeline[-1]
                print(f"incident/{name} {target} (from {last.get('from') or '?'}, by {last.get('by') or '?'})")
                return EXIT_OK
            ready: dict[str, Any] = next(
                (item for item in status.get("conditions") or [] if item.get("type") == "Ready"),
                {},
            )
            why = ready.get("message") or f"the incident is {status.get('phase')}"
            sys.stderr.write(f"{prog}: {name}: the operator did not move it to {target}: {why}\n")
            return EXIT_INVALID
        if time.monotonic() >= deadline:
            sys.stderr.write(
                f"{prog}: {name}: the request is written, but the operator did not apply it within {timeout:g} s; "
                f"is `upkeep run` watching namespace {namespace} (and not with --dry-run)?\n"
            )
            return EXIT_TIMEOUT
        time.sleep(_INCIDENT_WAIT_INTERVAL)


def _list_table(
    args: argparse.Namespace,
    prog: str,
    plural: str,
    noun: str,
    header: list[str],
    row_of: Callable[[Mapping[str, Any], Any], list[Any]],
) -> int:
    """Print the Upkeep objects of ``plural`` (the namespace, or every one with -A) as kubectl prints a table."""
    import datetime

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    from upkeep import GROUP, VERSION

    try:
        api_client, default_namespace, _ = _incident_client(args)
    except _NoCluster as error:
        sys.stderr.write(f"{prog}: no cluster to talk to: {error}\n")
        return EXIT_INVALID
    api = client.CustomObjectsApi(api_client)
    namespace = args.namespace or default_namespace or "default"
    answer: Any
    try:
        if args.all_namespaces:
            answer = api.list_cluster_custom_object(GROUP, VERSION, plural, _preload_content=False)
        else:
            answer = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, _preload_content=False)
    except ApiException as error:
        sys.stderr.write(f"{prog}: {_api_message(error)}\n")
        return EXIT_INVALID
    except (OSError, TransportError) as error:
        sys.stderr.write(f"{prog}: cannot reach the cluster: {error}\n")
        return EXIT_INVALID
    items = json.loads(answer.data).get("items") or []
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No {noun} in {where}.")
        return EXIT_OK
    now = datetime.datetime.now(datetime.UTC)
    rows = [(["NAMESPACE"] if args.all_namespaces else []) + header]
    for item in sorted(items, key=lambda found: str(found["metadata"].get("creationTimestamp") or "")):
        row = [item["metadata"].get("namespace", "")] if args.all_namespaces else []
        rows.append([str(cell) for cell in row + row_of(item, now)])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _incident_list(args: argparse.Namespace) -> int:
    def row_of(item: Mapping[str, Any], now: Any) -> list[Any]:
        metadata, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
        return [
            metadata.get("name", ""),
            spec.get("severity", ""),
            status.get("phase", ""),
            spec.get("service", ""),
            str(status.get("occurrences", "")),
            _age(metadata.get("creationTimestamp"), now),
        ]

    header = ["NAME", "SEVERITY", "PHASE", "SERVICE", "OCCURRENCES", "AGE"]
    return _list_table(args, "upkeep incident list", "incidents", "incidents", header, row_of)


def _age(created: Any, now: Any) -> str:
    """kubectl's short age: 40s, 12m, 3h, 5d."""
    import datetime

    try:
        since = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# upkeep playbookrun: a person's approval of a run that waits for one, and the list of runs

_PLAYBOOKRUN_WAIT_INTERVAL = 0.2
"""Seconds between looks at the run while waiting for the operator to start it (a CLI's poll)."""


def _add_playbookrun_commands(commands: Any) -> None:
    _, actions = _command_group(
        commands,
        "playbookrun",
        help="approve a PlaybookRun that waits for approval (as kubectl patch of spec.approval does); list runs",
        description=(
            "A run of a Playbook in RequireApproval mode waits in Pending until a person approves it:\n"
            "spec.approval {approvedBy, at, note}. `approve` writes it the way docs/playbooks.md shows\n"
            "for kubectl, after checking that the run is waiting for approval at all."
        ),
        epilog=(
            "examples:\n"
            "  upkeep playbookrun list -n shop\n"
            '  upkeep playbookrun approve shop-crashloop-8e3447ff-crashloop-rollback-1 -n shop --note "bad release"\n'
            "  upkeep playbookrun approve shop-crashloop-8e3447ff-crashloop-rollback-1 -n shop --by alice --wait"
        ),
    )
    approve = actions.add_parser(
        "approve",
        help="approve a run of a RequireApproval playbook: spec.approval",
        description=(
            f"Approve a run: a merge patch of spec.approval {{approvedBy, at, note}} (field manager\n"
            f"{_INCIDENT_FIELD_MANAGER}). It is refused, and nothing is written, unless the run waits for\n"
            "approval: its status.phase is Pending and its Playbook's spec.mode is RequireApproval (the\n"
            "Playbook of spec.playbookRef, in the run's namespace or cluster-wide). Approving a run that\n"
            "is already approved changes nothing. The operator then starts the run."
        ),
        epilog=(
            "examples:\n"
            '  upkeep playbookrun approve shop-oom-1a2b3c4d-oom-1 -n shop --note "limit checked with the team"\n'
            "  upkeep playbookrun approve shop-oom-1a2b3c4d-oom-1 -n shop --by alice --wait --timeout 60\n"
            "  upkeep playbookrun approve shop-oom-1a2b3c4d-oom-1 -n shop --dry-run\n\n"
            "the same with kubectl (without the checks):\n"
            "  kubectl patch playbookrun shop-oom-1a2b3c4d-oom-1 -n shop --type merge -p \\\n"
            '    \'{"spec":{"approval":{"approvedBy":"alice","at":"2026-01-31T12:00:00Z","note":"..."}}}\'\n\n'
            "exit status: 0 approved (or already so), 1 refused (the run does not wait for approval, or\n"
            "the API server said no; or no such run, or no cluster), 2 usage error, 3 with --wait: the\n"
            "operator did not start the run within --timeout (is `upkeep run` watching the namespace?)"
        ),
        formatter_class=_formatter,
    )
    approve.add_argument("name", metavar="NAME", help="the PlaybookRun's name")
    _incident_target_options(approve)
    approve.add_argument(
        "--by",
        metavar="WHO",
        default=None,
        help="who approves, as spec.approval.approvedBy records it (default: the kubeconfig's user, else $USER)",
    )
    approve.add_argument("--note", default=None, help="why, recorded as spec.approval.note")
    approve.add_argument(
        "--dry-run",
        action="store_true",
        help="send the approval with dryRun=All: the API server checks it, nothing is written",
    )
    approve.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="wait until the operator has started the run (status.phase leaves Pending) (default: no wait)",
    )
    approve.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long --wait waits for the operator (default: %(default)s)",
    )
    approve.set_defaults(handler=_playbookrun_approve)
    listing = actions.add_parser(
        "list",
        help="list PlaybookRuns: playbook, incident, attempt, phase, approval, age",
        description=(
            "List the PlaybookRuns of a namespace (or of all), oldest first. APPROVAL is who approved\n"
            "the run, 'waiting' for a run that waits for approval, '-' for one that needs none."
        ),
        epilog=(
            "examples:\n  upkeep playbookrun list -n shop\n  upkeep playbookrun list -A\n\n"
            "exit status: 0 listed, 1 no cluster"
        ),
        formatter_class=_formatter,
    )
    _incident_target_options(listing)
    listing.add_argument("--all-namespaces", "-A", action="store_true", help="list the runs of every namespace")
    listing.set_defaults(handler=_playbookrun_list)


def _approval_refusal(run: Mapping[str, Any], playbook: Mapping[str, Any] | None) -> str | None:
    """Why ``run`` cannot be approved (naming the field that says so), or None when it waits for approval."""
    spec, status = run.get("spec") or {}, run.get("status") or {}
    approval = spec.get("approval") or {}
    approved = f" (approved by {approval.get('approvedBy')} at {approval.get('at')})" if approval else ""
    phase = status.get("phase")
    if phase != "Pending":
        said = f"is {phase}" if phase else "is not set yet (the operator has not taken the run in)"
        return f"status.phase {said}, not Pending: the run does not wait for approval{approved}"
    reference = str((spec.get("playbookRef") or {}).get("name") or "")
    if playbook is None:
        return (
            f"spec.playbookRef: Playbook {reference!r} not found in the run's namespace nor cluster-wide, "
            "so nothing says the run needs approval"
        )
    mode = (playbook.get("spec") or {}).get("mode") or "Automatic"
    if mode != "RequireApproval":
        return f"spec.mode of playbook/{reference} is {mode}, not RequireApproval: the run does not wait for approval"
    return None


def _playbookrun_approve(args: argparse.Namespace) -> int:
    import datetime

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    from upkeep import GROUP, VERSION
    from upkeep.engine import semantics

    prog = "upkeep playbookrun approve"
    if args.timeout <= 0:
        sys.stderr.write(f"{prog}: --timeout must be more than 0 seconds\n")
        return EXIT_USAGE
    try:
        api_client, default_namespace, user = _incident_client(args)
    except _NoCluster as error:
        sys.stderr.write(f"{prog}: no cluster to talk to: {error}\n")
        return EXIT_INVALID
    namespace = args.namespace or default_namespace or "default"
    who = args.by or user or os.environ.get("USER") or "unknown"
    api = client.CustomObjectsApi(api_client)

    def read() -> dict[str, Any]:
        answer: Any = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "playbookruns", args.name, _preload_content=False
        )
        found: dict[str, Any] = json.loads(answer.data)
        return found

    def playbook_of(run: Mapping[str, Any]) -> dict[str, Any] | None:
        """The run's Playbook: in its namespace, else a cluster-wide one of that name (any namespace)."""
        name = str(((run.get("spec") or {}).get("playbookRef") or {}).get("name") or "")
        if not name:
            return None
        try:
            answer: Any = api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "playbooks", name, _preload_content=False
            )
        except ApiException as error:
            if error.status != 404:
                raise
        else:
            found: dict[str, Any] = json.loads(answer.data)
            return found
        answer = api.list_cluster_custom_object(
            GROUP,
            VERSION,
            "playbooks",
            label_selector=f"{semantics.CLUSTER_SCOPE_LABEL}=cluster",
            _preload_content=False,
        )
        items = json.loads(answer.data).get("items") or []
        return next((item for item in items if item.get("metadata", {}).get("name") == name), None)

    try:
        for _ in range(5):
            run = read()
            approval = (run.get("spec") or {}).get("approval") or {}
            if approval.get("approvedBy") and (run.get("status") or {}).get("phase") == "Pending":
                print(
                    f"playbookrun/{args.name} is already approved (by {approval['approvedBy']} at {approval.get('at')})"
                )
                return EXIT_OK
            refused = _approval_refusal(run, playbook_of(run))
            if refused:
                sys.stderr.write(f"{prog}: {args.name}: {refused}; nothing was changed\n")
                return EXIT_INVALID
            at = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            wanted: dict[str, Any] = {"approvedBy": who, "at": at}
            if args.note:
                wanted["note"] = args.note
            try:
                api.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    "playbookruns",
                    args.name,
                    {"metadata": {"resourceVersion": run["metadata"]["resourceVersion"]}, "spec": {"approval": wanted}},
                    field_manager=_INCIDENT_FIELD_MANAGER,
                    dry_run="All" if args.dry_run else None,
                    _preload_content=False,
                )
            except ApiException as error:
                if error.status == 409:
                    continue  # changed since read: check again whether it still waits
                raise
            break
        else:
            sys.stderr.write(f"{prog}: {args.name} kept changing while the approval was written; try again\n")
            return EXIT_INVALID
    except (ApiException, OSError, TransportError) as error:
        return _request_failed(prog, "playbookrun", args.name, namespace, error)
    if args.dry_run:
        print(f"playbookrun/{args.name} would be approved by {who} at {at} (dry run: nothing was written)")
        return EXIT_OK
    print(f"playbookrun/{args.name} approved by {who} at {at}; the operator starts it")
    if not args.wait:
        return EXIT_OK
    return _playbookrun_wait(prog, args.name, namespace, read, args.timeout)


def _playbookrun_wait(prog: str, name: str, namespace: str, read: Callable[[], dict[str, Any]], timeout: float) -> int:
    """Wait until the operator has taken the approved run out of Pending; say where it went."""
    import time

    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    deadline = time.monotonic() + timeout
    while True:
        try:
            status = read().get("status") or {}
        except ApiException as error:
            sys.stderr.write(f"{prog}: {_api_message(error)}\n")
            return EXIT_INVALID
        except (OSError, TransportError) as error:
            sys.stderr.write(f"{prog}: cannot reach the cluster: {error}\n")
            return EXIT_INVALID
        if status.get("phase") not in (None, "Pending"):
            print(f"playbookrun/{name} {status['phase']}")
            return EXIT_OK
        if time.monotonic() >= deadline:
            sys.stderr.write(
                f"{prog}: {name}: approved, but the operator did not start the run within {timeout:g} s; "
                f"is `upkeep run` watching namespace {namespace} (and not with --dry-run)?\n"
            )
            return EXIT_TIMEOUT
        time.sleep(_PLAYBOOKRUN_WAIT_INTERVAL)


def _playbookrun_list(args: argparse.Namespace) -> int:
    def row_of(item: Mapping[str, Any], now: Any) -> list[Any]:
        metadata, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        approval = (spec.get("approval") or {}).get("approvedBy")
        waiting = status.get("phase") == "Pending" and ready.get("reason") == "AwaitingApproval"
        return [
            metadata.get("name", ""),
            (spec.get("playbookRef") or {}).get("name", ""),
            (spec.get("incidentRef") or {}).get("name", ""),
            str(spec.get("attempt", "")),
            status.get("phase") or "<none>",
            approval or ("waiting" if waiting else "-"),
            _age(metadata.get("creationTimestamp"), now),
        ]

    header = ["NAME", "PLAYBOOK", "INCIDENT", "ATTEMPT", "PHASE", "APPROVAL", "AGE"]
    return _list_table(args, "upkeep playbookrun list", "playbookruns", "playbook runs", header, row_of)


def _add_plan_command(commands: Any) -> None:
    plan = commands.add_parser(
        "plan",
        help="what a pull request changes: Releases and objects affected, field diff, validation, risks",
        description=(
            "Render the manifests at each Release's path (or at --path) at two refs of a local git\n"
            "repository, and say what the head changes: the Releases and objects affected, a\n"
            "field-level diff, the validation errors of the head (as `upkeep validate`) and the\n"
            "risk factors a reviewer should look at (docs/plan.md). Markdown for a pull-request\n"
            "comment, or JSON. Files are read from git objects; the work tree does not matter.\n\n"
            "With --cluster the head is compared with the live cluster of the kubeconfig instead\n"
            "of a base ref: each object on the fields the head declares (server defaults and the\n"
            "status are no change), objects the cluster lacks are added; --base is then optional,\n"
            "and with it, objects the base declares and the head drops, still live, are removed."
        ),
        epilog=(
            "examples:\n"
            "  upkeep plan --repo . --base origin/main --head HEAD\n"
            "  upkeep plan --repo . --base main --head feature --path apps/shop --output json\n"
            "  upkeep plan --repo . --head HEAD --cluster --context prod\n\n"
            "exit status: 0 no changes, 1 the head is invalid (validation errors), 2 usage error\n"
            "(not a repository, unknown ref, a cluster that cannot be read), 3 valid changes found"
        ),
        formatter_class=_formatter,
    )
    plan.add_argument("--repo", type=Path, default=Path("."), metavar="DIR", help="the git repository (default: .)")
    plan.add_argument(
        "--base",
        default=None,
        metavar="REF",
        help="the ref the change starts from (branch, tag, sha); required without --cluster",
    )
    plan.add_argument("--head", required=True, metavar="REF", help="the ref with the change")
    plan.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="P",
        help="a manifest path to plan (repeat for more; default: the paths of the Releases in the repository)",
    )
    plan.add_argument(
        "--output",
        "-o",
        choices=("markdown", "json"),
        default="markdown",
        help="markdown for a PR comment, json for CI (default: markdown)",
    )
    plan.add_argument(
        "--cluster",
        action="store_true",
        help="compare the head with the live cluster of the kubeconfig instead of --base",
    )
    plan.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --cluster: the kubeconfig (default: $KUBECONFIG, else ~/.kube/config)",
    )
    plan.add_argument(
        "--context", default=None, metavar="NAME", help="with --cluster: the kubeconfig context (default: current)"
    )
    plan.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    from upkeep.gitops import live, plan

    if not args.cluster and (args.kubeconfig is not None or args.context is not None):
        sys.stderr.write("upkeep plan: --kubeconfig and --context need --cluster\n")
        return plan.EXIT_USAGE
    try:
        if args.cluster:
            kubeconfig = str(args.kubeconfig) if args.kubeconfig is not None else None
            with live.connect(context=args.context, kubeconfig=kubeconfig) as reader:
                made = plan.make_plan(args.repo, args.base, args.head, args.path, cluster=reader)
        else:
            made = plan.make_plan(args.repo, args.base, args.head, args.path)
    except (plan.PlanError, live.ClusterUnavailable) as error:
        sys.stderr.write(f"upkeep plan: {error}\n")
        return plan.EXIT_USAGE
    if args.output == "json":
        json.dump(plan.to_json(made), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plan.to_markdown(made))
    return made.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``upkeep`` command with ``argv`` (default: the process's arguments)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
