#!/usr/bin/env bash
# Run (or resume) a long sweep in this project, saving finished runs into its archive as it goes:
#
#   scripts/resume_sweep.sh paper            # profiles/paper.yaml, archive runs_archive/paper
#   scripts/resume_sweep.sh paper --redecode # the archive's runs were made by older code that differs from this
#                                            # checkout's only in h's decoding (read the diff it prints first)
#
# Run it in a clone of its own (it applies the profile to params.yaml), in the background:
#   nohup scripts/resume_sweep.sh paper > sweep.log 2>&1 &
# The steps are the ones profiles/paper.yaml lists: restore the archived runs, make the deterministic stages,
# restore the archived LMs and S (upstream_archive; trained here only when their inputs changed), check, then the
# mapping stages one method at a time in params.yaml's order, saving the archive after each, then the rest.
set -euo pipefail
profile=${1:?usage: scripts/resume_sweep.sh PROFILE [--redecode]}
redecode=${2:-}
[ -z "$redecode" ] || [ "$redecode" = --redecode ] || { echo "usage: scripts/resume_sweep.sh PROFILE [--redecode]"; exit 2; }
archive=runs_archive/$profile
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
[ -f "profiles/$profile.yaml" ] || { echo "no profiles/$profile.yaml"; exit 2; }
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

# An archive made by code that has changed since is resumed at its own code: $archive/code_commit names the commit
# whose training code (lmm_utils less evaluation, pipeline and app: mapping/grid.py's NOT_TRAINING_CODE) made its
# runs. Any other code would give every run another fingerprint and start the sweep again -- unless no module that
# differs is one a run loads: then the map runs' code fingerprints (with the archive's S) agree and the sweep goes on.
# With --redecode the archive moves to this checkout's code instead: before each method's stage, the runs of the
# decode-free methods are re-predicted with this checkout's decoding (scripts/redecode_runs.py, which proves the
# commit, params and data through each run's fingerprint), and everything else (lmm and its ablations, whose
# self-training labels depend on the decoding) is trained again by the stage; the archive then names this commit,
# and $archive/redecode_from keeps the older one until the sweep is through, so an interrupted resume goes on.
trained_by=""
if [ "$redecode" = --redecode ] && [ -f "$archive/redecode_from" ]; then
  trained_by=$(cat "$archive/redecode_from")
fi
if [ -f "$archive/code_commit" ]; then
  want=$(cat "$archive/code_commit")
  training_code=(lmm_utils ':(exclude)lmm_utils/evaluation' ':(exclude)lmm_utils/pipeline' ':(exclude)lmm_utils/app')
  if ! git diff --quiet "$want" HEAD -- "${training_code[@]}"; then
    if [ "$redecode" = --redecode ]; then
      echo "training code from ${want:0:7} to this checkout (stated to change h's decoding only by --redecode):"
      git diff --stat "$want" HEAD -- "${training_code[@]}"
      trained_by=$want
      echo "$want" > "$archive/redecode_from"
      git rev-parse HEAD > "$archive/code_commit"
    elif [ -f "$archive/_upstream/files/data/synth/S.pt" ] && python -c "import sys
from lmm_utils.pipeline.redecode import same_code_fingerprint_cli as same
sys.exit(same('$want', '$archive/_upstream/files'))"; then
      # the modules that differ are none a run loads (the corpus stage's, say): every archived run is reused as it is
      echo "training modules differ from ${want:0:7}, but not the map runs' code fingerprint: the archive is resumed here"
    else
      cat <<EOT
$archive's runs were made with the training code of ${want:0:7}; this checkout's differs. Resume it in a clone at
that commit, with the archive as it is now:
  git clone <this repository> sweep && cd sweep && git checkout ${want:0:7} && git checkout $(git rev-parse --short HEAD) -- $archive
  make setup && nohup scripts/resume_sweep.sh $profile > sweep.log 2>&1 &
or, when the diff (git diff --stat ${want:0:7} HEAD -- lmm_utils) changes only h's decoding, move it to this code:
  scripts/resume_sweep.sh $profile --redecode
(or delete $archive/code_commit to start the sweep again at this code)
EOT
      exit 3
    fi
  fi
fi

stamp "apply profiles/$profile.yaml"
python -m lmm_utils.core.params apply "profiles/$profile.yaml"
if [ -d "$archive" ]; then
  python scripts/run_archive.py restore --archive "$archive"
fi
stamp "the deterministic stages"
dvc repro perform
if [ -d "$archive/_upstream" ]; then
  python scripts/run_archive.py restore-upstream --archive "$archive" || echo "(the stages will be trained here)"
fi
stamp "the trained stages (reused when restored)"
dvc repro pretrain_M synth
if [ -d "$archive" ]; then
  python scripts/run_archive.py check --archive "$archive" || true
fi
methods=$(python -c "import yaml; print(' '.join(yaml.safe_load(open('params.yaml'))['mapping']['methods']))")
for m in $methods; do
  stamp "map@$m"
  if [ -n "$trained_by" ] && python -c "import sys; from lmm_utils.pipeline.redecode import decodes_in_training as d; sys.exit(d('$m'))"; then
    python scripts/redecode_runs.py --root . --trained-by "$trained_by" --only-decoding-changed --methods "$m" \
      || echo "(not re-decoded: the stage trains them again)"
  fi
  rc=0; dvc repro "map@$m" || rc=$?   # a failed stage still leaves its finished runs: save them first
  python scripts/run_archive.py save --archive "$archive" ${trained_by:+--replace} || echo "(the archive was not saved: see above)"
  [ "$rc" -eq 0 ] || { echo "map@$m failed (exit $rc)"; exit "$rc"; }
done
rm -f "$archive/redecode_from"
stamp "the stages after the sweep"
dvc repro
stamp "done: commit $archive, then scripts/collect_results.py --out reports/$profile --profile $profile"
