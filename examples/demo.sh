#!/usr/bin/env bash
# The demo: a sandbox cluster, Upkeep's CRDs and the "shop" example applied with the real kubectl,
# the operator checking every object, the GitSource fetching the served example repository, and a crash
# loop that becomes one Incident. Run it with `make demo`; it cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export UPKEEP_SANDBOX_HOME
UPKEEP_SANDBOX_HOME=$(mktemp -d)
export KUBECONFIG="$UPKEEP_SANDBOX_HOME/kubeconfig"
operator_pid=""
receiver_pid=""
git_pid=""
free_port() { "$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cleanup() {
  if [ -n "$operator_pid" ]; then kill "$operator_pid" 2>/dev/null; wait "$operator_pid" 2>/dev/null || true; fi
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null; wait "$receiver_pid" 2>/dev/null || true; fi
  if [ -n "$git_pid" ]; then kill "$git_pid" 2>/dev/null; wait "$git_pid" 2>/dev/null || true; fi
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

step "a stand-in for Slack and the pager: the policy's channels read their URLs from these Secrets"
receiver_port=$(free_port)
"$bin/python" examples/receiver.py "$receiver_port" > "$UPKEEP_SANDBOX_HOME/notifications.log" 2>&1 &
receiver_pid=$!
"$bin/kubectl" create secret generic upkeep-slack -n shop --from-literal=url="http://127.0.0.1:$receiver_port/slack"
"$bin/kubectl" create secret generic upkeep-pager -n shop --from-literal=url="http://127.0.0.1:$receiver_port/pager"

step "the shop's git server: the example repository, served on 127.0.0.1:8418 as its GitSource says"
work="$UPKEEP_SANDBOX_HOME/shop-work"
mkdir -p "$work" && cp -R examples/apps "$work/"
git -C "$work" init -q -b main
git -C "$work" add -A
git -C "$work" -c user.name=demo -c user.email=demo@localhost commit -q -m "the shop, as declared"
git clone -q --bare "$work" "$UPKEEP_SANDBOX_HOME/shop.git"
"$bin/python" examples/gitserver.py 8418 shop.git "$UPKEEP_SANDBOX_HOME/shop.git" &
git_pid=$!
git ls-remote http://127.0.0.1:8418/shop.git main 2>/dev/null || { sleep 1; git ls-remote http://127.0.0.1:8418/shop.git main; }

step "run the operator; it checks every object and says so in its conditions"
http_port=$(free_port)
"$bin/upkeep" run --all-namespaces --standalone --liveness none --http "127.0.0.1:$http_port" \
  > "$UPKEEP_SANDBOX_HOME/operator.log" 2>&1 &
operator_pid=$!
"$bin/kubectl" wait --for=condition=Accepted playbooks --all -n shop --timeout=20s
"$bin/kubectl" get playbooks,releases -n shop \
  -o custom-columns='KIND:.kind,NAME:.metadata.name,ACCEPTED:.status.conditions[?(@.type=="Accepted")].status,READY:.status.conditions[?(@.type=="Ready")].reason'
for _ in $(seq 1 20); do
  "$bin/kubectl" get events -n shop --field-selector reason=Valid -o name 2>/dev/null | grep -q . && break
  sleep 0.5
done
"$bin/kubectl" get events -n shop --field-selector reason=Valid | sed -n 1,5p

step "git is the declared state: the shop's GitSource fetched the example repository (served on 127.0.0.1:8418)"
"$bin/kubectl" wait --for=condition=Ready gitsource/shop -n shop --timeout=60s
"$bin/kubectl" get gitsource shop -n shop
echo "The shop Release asks for the Canary strategy, not built yet; it says so instead of applying:"
"$bin/kubectl" get release shop -n shop \
  -o custom-columns='NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,REASON:.status.conditions[?(@.type=="Ready")].reason'

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

step "the on-call channel was told (the Slack stand-in's log), once per event: status.notifications records each"
for _ in $(seq 1 40); do
  grep -q . "$UPKEEP_SANDBOX_HOME/notifications.log" && break
  sleep 0.5
done
cat "$UPKEEP_SANDBOX_HOME/notifications.log"

step "the crashloop Playbook acts on it: a PlaybookRun records each step before it runs, with its idempotency key"
for _ in $(seq 1 40); do
  "$bin/kubectl" get playbookruns -n shop -o name 2>/dev/null | grep -q . && break
  sleep 0.5
done
"$bin/kubectl" get playbookruns -n shop
"$bin/kubectl" get playbookruns -n shop \
  -o jsonpath='{range .items[*].status.steps[*]}{.name}  {.action}  {.phase}  {.idempotencyKey}{"\n"}{end}'

step "someone acknowledges it (kubectl patch of spec.state does the same); the timeline records who and why"
"$bin/upkeep" incident ack shop-crashloop-7f3c -n shop --by alice --note "rolling back"
"$bin/kubectl" get incident shop-crashloop-7f3c -n shop \
  -o jsonpath='{range .status.timeline[*]}{.at}  {.from} -> {.to}  by {.by}  {.note}{"\n"}{end}'

step "the fix: the crash loop stops; once the signal stays away for the policy's clearFor (5m), it auto-resolves"
"$bin/upkeep" sandbox fault workload clear deployment/shop -n shop
"$bin/kubectl" rollout restart deployment/shop -n shop
"$bin/kubectl" rollout status deployment/shop -n shop --timeout=60s

step "a broken Incident is refused by the API server, naming the field"
sed 's/severity: SEV2/severity: SEV9/; s/name: shop-crashloop-7f3c/name: broken/' examples/shop/incident.yaml \
  | "$bin/kubectl" apply -f - || true

step "an acknowledgement the lifecycle forbids is refused on apply, naming spec.state"
"$bin/kubectl" patch incident shop-crashloop-7f3c -n shop --type merge -p '{"spec":{"state":"Closed"}}' || true

step "the operator's metrics (--http): open incidents by severity, detections by signal type"
"$bin/python" -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$http_port/metrics').read().decode())" \
  | grep -E '^upkeep_(incidents_open|detections_total)' || true

step "what is not there yet"
echo "Incidents (detected, deduplicated, notified, acknowledged, auto-resolved), Alertmanager alerts,"
echo "Problems, remediation Playbooks, GitSources and Direct Releases (sync, prune, drift, self-heal,"
echo "write-back) work (docs/incidents.md, docs/playbooks.md, docs/gitops.md). The Canary strategy and"
echo "Changes have no controller yet: accepted, not reconciled."
