#!/usr/bin/env bash
# The demo: a sandbox cluster, Upkeep's CRDs and the "shop" example applied with the real kubectl,
# the operator checking every object, and a crash loop that becomes one Incident. Run it with `make demo`; it cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export UPKEEP_SANDBOX_HOME
UPKEEP_SANDBOX_HOME=$(mktemp -d)
export KUBECONFIG="$UPKEEP_SANDBOX_HOME/kubeconfig"
operator_pid=""
cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null
  "$bin/upkeep" sandbox down >/dev/null || true
  [ -n "${KEEP_DEMO:-}" ] || rm -rf "$UPKEEP_SANDBOX_HOME"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start the sandbox cluster (a Kubernetes API server on 127.0.0.1)"
"$bin/upkeep" sandbox up --detach --fast --admin
"$bin/kubectl" version 2>/dev/null | tail -1

step "install Upkeep's CustomResourceDefinitions"
"$bin/kubectl" apply -f crds/
"$bin/kubectl" wait --for=condition=Established crd --all --timeout=30s

step "check the example repository, then apply it"
"$bin/upkeep" validate examples/ | tail -1
"$bin/kubectl" apply -f examples/apps/shop/namespace.yaml
"$bin/kubectl" apply -f examples/apps/shop/
"$bin/kubectl" apply -R -f examples/shop/
"$bin/kubectl" get upkeep -A

step "the shop Deployment rolls out on the sandbox's simulated nodes"
"$bin/kubectl" rollout status deployment/shop -n shop --timeout=60s
"$bin/kubectl" get nodes
"$bin/kubectl" get pods -n shop -o wide

step "run the operator; it checks every object and says so in its conditions"
"$bin/upkeep" run --all-namespaces --standalone --liveness none > "$UPKEEP_SANDBOX_HOME/operator.log" 2>&1 &
operator_pid=$!
"$bin/kubectl" wait --for=condition=Accepted playbooks --all -n shop --timeout=20s
"$bin/kubectl" get playbooks,releases -n shop \
  -o custom-columns='KIND:.kind,NAME:.metadata.name,ACCEPTED:.status.conditions[?(@.type=="Accepted")].status,READY:.status.conditions[?(@.type=="Ready")].reason'
"$bin/kubectl" get events -n shop --field-selector reason=Valid | sed -n 1,5p

step "a fault on purpose: the shop's containers crash-loop, as after a bad release"
"$bin/upkeep" sandbox fault workload crashloop deployment/shop -n shop
for _ in $(seq 1 60); do
  "$bin/kubectl" get pods -n shop --no-headers 2>/dev/null | grep -q CrashLoopBackOff && break
  sleep 0.5
done
"$bin/kubectl" get pods -n shop

step "the crash loop is one Incident: the example's shop-crashloop-7f3c has its fingerprint, so it counts the occurrences"
for _ in $(seq 1 60); do
  occurrences=$("$bin/kubectl" get incident shop-crashloop-7f3c -n shop -o jsonpath='{.status.occurrences}')
  [ "${occurrences:-0}" -ge 3 ] && break
  sleep 0.5
done
"$bin/kubectl" get incidents -n shop
"$bin/kubectl" get events -n shop --field-selector involvedObject.name=shop-crashloop-7f3c | tail -3

step "someone acknowledges it with kubectl patch; the timeline records who and why"
"$bin/kubectl" patch incident shop-crashloop-7f3c -n shop --type merge \
  -p '{"metadata":{"annotations":{"upkeep.dev/requested-by":"alice"}},"spec":{"state":"Acknowledged","note":"rolling back"}}'
"$bin/kubectl" wait --for=jsonpath='{.status.phase}'=Acknowledged incident/shop-crashloop-7f3c -n shop --timeout=20s
"$bin/kubectl" get incident shop-crashloop-7f3c -n shop \
  -o jsonpath='{range .status.timeline[*]}{.at}  {.from} -> {.to}  by {.by}  {.note}{"\n"}{end}'

step "the fix: the crash loop stops; once the signal stays away for the policy's clearFor (5m), it auto-resolves"
"$bin/upkeep" sandbox fault workload clear deployment/shop -n shop
"$bin/kubectl" rollout restart deployment/shop -n shop
"$bin/kubectl" rollout status deployment/shop -n shop --timeout=60s

step "a broken Incident is refused by the API server, naming the field"
sed 's/severity: SEV2/severity: SEV9/; s/name: shop-crashloop-7f3c/name: broken/' examples/shop/incident.yaml \
  | "$bin/kubectl" apply -f - || true

step "what is not there yet"
echo "Incidents are detected, deduplicated, acknowledged and auto-resolved (docs/incidents.md). Alerts,"
echo "notifications, problems, playbooks and releases have no controller yet: accepted, not reconciled."
