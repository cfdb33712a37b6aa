#!/bin/sh
# CPU time per frame (cpu_cost.py) of OLD_COMMIT's tree and this one, alternating, 3 rounds, both envs (issue 28):
#   sh docs/results/throughput/cpu_cost_ab.sh ef63bbb > docs/results/throughput/cpu_cost_ab.jsonl
# One JSON line per run: {"side": old|new, "round": r, "result": cpu_cost.py's line}.
set -e
old_commit=$1
root=$(cd "$(dirname "$0")/../../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
old_tree=$(mktemp -d)
trap 'rm -rf "$old_tree"' EXIT
git -C "$root" archive "$old_commit" | tar -x -C "$old_tree"
for round in 1 2 3; do
  for env in select_nonmatching_object minigrid_memory_s7; do
    for side in old new; do
      tree=$root; [ $side = old ] && tree=$old_tree
      result=$(cd "$tree" && PYTHONPATH=$tree "$python" "$root/docs/results/throughput/cpu_cost.py" $env 4)
      echo "{\"side\": \"$side\", \"round\": $round, \"result\": $result}"
    done
  done
done
