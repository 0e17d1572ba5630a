#!/usr/bin/env bash
# Compare two checkouts of Emporium on the same benchmarks, alternating old, new, new, old, so that the
# machine's drift lands on both sides. Reads one benchmark per line on stdin ("loadtest.bench_x ARGS").
#   OLD=/path/to/old NEW=/path/to/new loadtest/ab_compare.sh OUT_DIR < benches.txt
# Each run's output goes to OUT_DIR/<side>-<bench>-<time>.log; OUT_DIR/summary.log has the tails.
set -u
OUT=$1
OLD=${OLD:?set OLD to the old checkout} NEW=${NEW:?set NEW to the new checkout}
PY=${PY:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
mkdir -p "$OUT"
run() {
  local side=$1 dir; shift
  if [ "$side" = old ]; then dir=$OLD; else dir=$NEW; fi
  local tag
  tag="$side-$(echo "$*" | tr ' /' '__')-$(date +%H%M%S)"
  echo "=== $(date +%T) $side: $* (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$OUT/summary.log"
  (cd "$dir" && PYTHONPATH="$dir" timeout 900 "$PY" -m "$@" >"$OUT/$tag.log" 2>&1)
  echo "exit $?" >>"$OUT/$tag.log"
  tail -25 "$OUT/$tag.log" >>"$OUT/summary.log"
}
while read -r line; do
  [ -z "$line" ] && continue
  # shellcheck disable=SC2086
  run old $line; run new $line; run new $line; run old $line
done
