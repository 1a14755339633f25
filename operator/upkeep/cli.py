"""The ``upkeep`` command: validate manifests, run the operator, print the CRDs.

Exit codes are the same for every subcommand: 0 success, 1 the thing checked is invalid
or the operator failed, 2 a usage error (bad flags, a path that does not exist).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from upkeep import __version__
from upkeep import settings as settings_

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

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

Run `upkeep COMMAND --help` for a command's options."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with EXIT_USAGE and say how to get help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\nTry `{self.prog} --help`.\n")
        raise SystemExit(EXIT_USAGE)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


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
        help="log and record (status + Event) every action but execute none",
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
    run.add_argument("--verbose", "-v", action="store_true", help="log at debug level")
    run.set_defaults(handler=_run)

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
    return settings_.OperatorSettings(
        scope=settings_.ScopeSettings(namespaces=tuple(args.namespace), all_namespaces=args.all_namespaces),
        safety=settings_.SafetySettings(dry_run=args.dry_run),
        peering=settings_.PeeringSettings(standalone=args.standalone, name=args.peering, priority=args.priority),
        health=settings_.HealthSettings(liveness_endpoint=liveness),
    )


def _run(args: argparse.Namespace) -> int:
    import kopf

    from upkeep import controllers

    settings = _settings_from(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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


def _crds(args: argparse.Namespace) -> int:
    from upkeep.model import schemas

    sys.stdout.write(yaml.safe_dump_all(schemas.crd_documents(), sort_keys=False))
    return EXIT_OK


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
