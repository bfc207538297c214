#!/usr/bin/env bash
# Mutation testing of the math, optimizer, schedule and checkpoint modules with mutmut 3.
#
#   tools/mutation_test.sh [REF] [WORKDIR]   # REF: a commit (default HEAD); WORKDIR: /tmp/mut_REF
#
# Not part of CI or the test suite: it clones the repository at REF into WORKDIR (a throwaway
# copy; the checkout you run it from is never touched), appends a [tool.mutmut] section to the
# clone's pyproject.toml (committed files only: uncommitted changes are not in the clone),
# runs `mutmut run` there and prints one line per module (mutants,
# killed, timeout, survived, no tests, score = (killed + timeout) / mutants) and the survivors.
# Needs `pip install mutmut` (written against 3.8) and the test extras. See docs/testing.md.
#
# Environment:
#   MUT_CHILDREN  parallel mutant workers (default 2)
#   MUT_K         pytest -k filter for the run (default: the numpy backend only, see below);
#                 MUT_K="" runs every backend and the jax/torch oracles (several times slower).
#   MUT_TESTS     the test files (default: the list below, those present at REF)
#   MUT_ONLY      mutant names (globs) to run instead of all, e.g. 'backprop.nn.losses*'
#   MUT_SUMMARY_ONLY=1  print the table of an earlier run in WORKDIR, run nothing
#   MUT_RECHECK   mutant names: after the table, run each one against every test that covers it,
#                 on every backend and oracle (no -k), and say whether it is killed there
#
# The default -k keeps the numpy backend: every backend runs the same lines of these modules, and
# JAX in the forked workers is several times slower. A survivor that could depend on the backend
# is re-checked with MUT_RECHECK before it is called a survivor.
set -euo pipefail

REF=${1:-HEAD}
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
WORK=${2:-/tmp/mut_$(git -C "$ROOT" rev-parse --short "$REF")}
CHILDREN=${MUT_CHILDREN:-2}
K=${MUT_K-not cupy and not torch and not array_api_strict and not jax}
TESTS=${MUT_TESTS:-tests/test_activations.py tests/test_gradients.py tests/test_layers.py
tests/test_optimizers.py tests/test_schedules.py tests/test_checkpoint.py tests/test_fit_checkpoints.py
tests/test_fit.py tests/test_resume_robust.py tests/test_components.py tests/test_mutation_kills.py}
TARGETS="backprop/nn/activations.py backprop/nn/losses.py backprop/nn/layers/dense.py
backprop/training/optimizers/*.py backprop/training/schedules.py backprop/training/checkpoint.py"

if [ ! -d "$WORK/.git" ]; then
    git clone -q "$ROOT" "$WORK"
    git -C "$WORK" checkout -q "$(git -C "$ROOT" rev-parse "$REF")"
fi
cd "$WORK"

toml_list() { # words -> ["a", "b"], keeping only paths that exist (test files) when asked
    local out="" w
    for w in $1; do
        if [ "${2:-}" = existing ] && [ ! -e "$w" ]; then continue; fi
        out="$out\"$w\", "
    done
    echo "[${out%, }]"
}

if ! grep -q '^\[tool.mutmut\]' pyproject.toml; then
    {
        echo
        echo "[tool.mutmut]"
        echo "source_paths = [\"backprop\"]"
        echo "only_mutate = $(toml_list "$TARGETS")"
        echo "also_copy = [\"backends/\", \"configs/\", \"docs/\", \"tools/\"]"
        echo "pytest_add_cli_args_test_selection = $(toml_list "$TESTS" existing)"
        if [ -n "$K" ]; then
            echo "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-q\", \"-x\", \"-k\", \"$K\"]"
        else
            echo "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-q\", \"-x\"]"
        fi
    } >> pyproject.toml
fi

if [ -z "${MUT_SUMMARY_ONLY:-}" ]; then
    start=$(date +%s)
    # shellcheck disable=SC2086
    nice -n 10 mutmut run --max-children "$CHILDREN" ${MUT_ONLY:-} > mutmut_run.log 2>&1 || true
    echo "mutmut run: $(( $(date +%s) - start )) s in $WORK (log: $WORK/mutmut_run.log)"
fi

mutmut results --all true 2>/dev/null | python3 -c "$(cat <<'PY'
import collections
import sys

rows = collections.defaultdict(collections.Counter)
survivors = []
for line in sys.stdin:
    name, _, status = line.strip().rpartition(": ")
    if "__mutmut_" not in name:
        continue
    # backprop.nn.losses.xǁHuberǁgrad__mutmut_3 -> backprop.nn.losses
    module = ".".join(part for part in name.split(".") if not part.startswith("x"))
    rows[module][status] += 1
    if status not in ("killed", "not checked"):
        survivors.append(f"{name}: {status}")
columns = ["killed", "timeout", "survived", "no tests"]
print(f"{'module':40} {'mutants':>7} " + " ".join(f"{c:>8}" for c in columns) + "    score")
total = collections.Counter()
checked = [m for m in sorted(rows) if set(rows[m]) != {"not checked"}]  # MUT_ONLY runs
for module in [*checked, "total"]:
    counts = total if module == "total" else rows[module]
    if module != "total":
        total.update(counts)
    if module == "total" and len(checked) < len(rows):
        counts = collections.Counter({k: v for k, v in counts.items() if k != "not checked"})
    n = sum(counts.values())
    score = (counts["killed"] + counts["timeout"]) / n if n else float("nan")
    cells = " ".join(f"{counts[c]:8}" for c in columns)
    print(f"{module:40} {n:7} {cells} {score:8.1%}")
other = sorted(set(total) - set(columns))
if other:
    print("other statuses:", {s: total[s] for s in other})
print("not killed:")
for line in survivors:
    print("  " + line)
PY
)"

for name in ${MUT_RECHECK:-}; do
    tests=$(python3 - "$name" <<'PY'
import json
import sys

name = sys.argv[1]
function = name.rsplit("__mutmut_", 1)[0]
stats = json.load(open("mutants/mutmut-stats.json"))["tests_by_mangled_function_name"]
print(" ".join(sorted({test.split("[")[0] for test in stats.get(function, [])})))
PY
)
    if [ -z "$tests" ]; then
        echo "recheck $name: no test covers it"
        continue
    fi
    # shellcheck disable=SC2086
    if (cd mutants && MUTANT_UNDER_TEST=$name nice -n 10 python -m pytest -p no:cacheprovider -q \
        -x $tests > /dev/null 2>&1); then
        echo "recheck $name: survives every backend and oracle"
    else
        echo "recheck $name: killed with every backend and oracle"
    fi
done
