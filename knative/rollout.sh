#!/usr/bin/env bash
# Traffic between Knative revisions of one function, for operators:
#   rollout.sh revisions SVC          revisions and who gets traffic
#   rollout.sh canary SVC PERCENT     PERCENT to the latest ready revision, the rest to the current one
#   rollout.sh promote SVC            all traffic to the candidate
#   rollout.sh rollback SVC           all traffic back to the current revision
# Tags give each side its own URL: current-SVC.NS.DOMAIN, candidate-SVC.NS.DOMAIN, latest-SVC.NS.DOMAIN.
set -euo pipefail
cmd=${1:?usage: rollout.sh revisions|canary|promote|rollback SVC [PERCENT]}
svc=${2:?name a function, e.g. embed}
ns=${NS:-mindspace}
k() { kubectl -n "$ns" "$@"; }
field() { k get ksvc "$svc" -o jsonpath="$1"; }
traffic() { k patch ksvc "$svc" --type merge -p "{\"spec\":{\"traffic\":[$1,{\"latestRevision\":true,\"percent\":0,\"tag\":\"latest\"}]}}"; }
tagged() { field "{.status.traffic[?(@.tag==\"$1\")].revisionName}"; }
# The revision serving most traffic now, if no "current" tag names one yet.
current() { local c; c=$(tagged current); [ -n "$c" ] && echo "$c" || field '{.status.traffic[0].revisionName}'; }

case "$cmd" in
  revisions)
    k get revisions -l "serving.knative.dev/service=$svc" \
      -o custom-columns='REVISION:.metadata.name,VERSION:.metadata.labels.app\.kubernetes\.io/version,READY:.status.conditions[?(@.type=="Ready")].status,CREATED:.metadata.creationTimestamp'
    echo; echo "traffic:"
    field '{range .status.traffic[*]}{.revisionName}{"\t"}{.percent}{"%\t"}{.tag}{"\t"}{.url}{"\n"}{end}' ;;
  canary)
    pct=${3:?give the percent for the new revision}
    latest=$(field '{.status.latestReadyRevisionName}'); cur=$(current)
    [ "$latest" != "$cur" ] || { echo "the latest ready revision ($latest) already is the current one"; exit 1; }
    traffic "{\"revisionName\":\"$cur\",\"percent\":$((100 - pct)),\"tag\":\"current\"},{\"revisionName\":\"$latest\",\"percent\":$pct,\"tag\":\"candidate\"}"
    echo "$svc: $((100 - pct))% $cur (current), $pct% $latest (candidate)" ;;
  promote)
    cand=$(tagged candidate); [ -n "$cand" ] || { echo "no candidate: run a canary first"; exit 1; }
    traffic "{\"revisionName\":\"$cand\",\"percent\":100,\"tag\":\"current\"}"
    echo "$svc: 100% $cand" ;;
  rollback)
    cur=$(current)
    traffic "{\"revisionName\":\"$cur\",\"percent\":100,\"tag\":\"current\"}"
    echo "$svc: 100% back to $cur" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
