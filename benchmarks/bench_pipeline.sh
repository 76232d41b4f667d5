#!/usr/bin/env bash
# Wall time, CPU use (GNU time's "Percent of CPU": 200 % = both of 2 cores busy the whole stage) and peak memory
# per stage of a whole `dvc repro`, in a scratch copy of the project.
#   bash benchmarks/bench_pipeline.sh [profile.yaml]     (default: params.yaml as committed)
# Peak memory is GNU time's "Maximum resident set size" of the largest single process; DVC runs
# stages one at a time, so the pipeline's peak is the largest stage's peak (its worker processes
# are counted separately, see the per-stage lines).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
git ls-files --cached --others --exclude-standard | grep -v '^dvc.lock$' | while read -r f; do
    [ -f "$f" ] && mkdir -p "$WORK/$(dirname "$f")" && cp "$f" "$WORK/$f"
done
cd "$WORK"
git init -q
# dvclive (stages pretrain, synth) needs a commit to attach its experiment to
git add -A >/dev/null && git -c user.name=bench -c user.email=bench@localhost commit -qm "benchmark copy"
export PATH="$ROOT/.venv/bin:$PATH" DVC_NO_ANALYTICS=1
[ $# -ge 1 ] && python -m lmm_utils.core.params apply "$ROOT/$1" >/dev/null
# stages in dependency order (dvc stage list follows dvc.yaml's order, which is not one)
STAGES=$(python -c "
from dvc.repo import Repo
import networkx as nx
print(' '.join(s.addressing for s in reversed(list(nx.topological_sort(Repo().index.graph)))))")
total=0 peak=0
for stage in $STAGES; do
    start=$(date +%s)
    /usr/bin/time -v -o "$WORK/time-$stage.txt" dvc repro --single-item "$stage" >"$WORK/log-$stage.txt" 2>&1 \
        || { echo "stage $stage failed; log:"; tail -30 "$WORK/log-$stage.txt"; exit 1; }
    end=$(date +%s)
    rss_kib=$(grep "Maximum resident" "$WORK/time-$stage.txt" | awk '{print $NF}')
    cpu=$(grep "Percent of CPU" "$WORK/time-$stage.txt" | awk '{print $NF}')
    printf "%-45s %5d s   CPU %5s   peak RSS of its largest process %5d MiB\n" "$stage" $((end - start)) "$cpu" \
        $((rss_kib / 1024))
    total=$((total + end - start)); [ "$rss_kib" -gt "$peak" ] && peak=$rss_kib
done
printf "%-45s %5d s   peak RSS of the largest process   %5d MiB\n" "whole pipeline" "$total" $((peak / 1024))
