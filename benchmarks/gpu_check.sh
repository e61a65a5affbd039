#!/usr/bin/env bash
# Every GPU measurement the project wants, in one run that stays under 8 minutes.
#
#   benchmarks/gpu_check.sh                     # on a GPU machine
#   benchmarks/gpu_check.sh --dry-run           # print the steps and commands, run nothing
#   benchmarks/gpu_check.sh --cpu-smoke         # run every step at tiny sizes (any machine)
#   PUREJAXRL_PATH=/path/to/purejaxrl benchmarks/gpu_check.sh   # include purejaxrl
#
# Steps, each with its own time budget (`timeout`; the whole run is capped at
# GPU_CHECK_TOTAL_S seconds, later steps are cut short or skipped to keep to it):
#   info        nvidia-smi, jax.devices(), versions, the backend workarounds in force
#   tp_cartpole benchmarks/throughput.py: CartPole-v1 (classic config), and
#   tp_minatar  Breakout-MinAtar (its preset): seeds 1 .. 262144 until the device's memory
#               (throughput.py's estimate) or --max-seconds stops it
#   tp_pqn      benchmarks/throughput.py --algo pqn: the CartPole-v1 and Breakout-MinAtar PQN
#               presets over seeds, the same way
#   ab_paths    the same at 1 and 64 seeds with the CPU workarounds forced on
#               (PUREJAXDQN_WORKAROUNDS=fast_threefry=1,patch_conv=1): are the standard
#               paths (JAX's threefry, nn.Conv) the right choice on this GPU?
#   compare     benchmarks/compare.py against purejaxrl (needs --purejaxrl PATH or
#               $PUREJAXRL_PATH and flashbax; skipped with a message otherwise)
#   minatar     benchmarks/learning.py: Breakout-MinAtar preset, 4 seeds, a short run
#   pqn_pong    PQN on Pong (`purejaxdqn train --algo pqn`, the options of the 4M-step CPU run
#               in benchmarks/README.md, so the curves compare; needs envpool): as far as its
#               budget takes it, then stopped by SIGTERM with the results so far written
#   pong        a short Pong run (`purejaxdqn train`, the options of the CPU short run in
#               benchmarks/README.md, so the curves compare; needs envpool). The command
#               rather than learning.py: it takes the short-run options (learning starts,
#               evaluation cadence), and on the step's timeout (SIGTERM) it stops after the
#               current chunk and still writes the results so far.
#
# Results: benchmarks/results/gpu_check_<device>/ (--cpu-smoke: a folder under $TMPDIR),
# one subfolder per step with its JSON and a log of everything it printed (the tables),
# plus info.log (nvidia-smi, jax.print_environment_info), devices.json, steps.tsv and
# summary.json / summary.md.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --dry-run            print every step's command and budget; run nothing
  --cpu-smoke          tiny sizes, to check the commands and options on any machine
  --results-dir DIR    where to write (default: see above)
  --purejaxrl PATH     purejaxrl repo root or dqn.py (default: $PUREJAXRL_PATH)
  -h, --help           this text
Environment: PYTHON (default python), GPU_CHECK_TOTAL_S (default 470; smoke 2400).
EOF
}

mode=gpu
shown=""
missed_rc=""
results_dir=""
purejaxrl="${PUREJAXRL_PATH:-}"
while (($#)); do
    case "$1" in
        --dry-run) mode=dry ;;
        --cpu-smoke) mode=smoke ;;
        --results-dir | --purejaxrl)
            (($# >= 2)) || { echo "gpu_check: $1 needs a value" >&2; exit 2; }
            [[ $1 == --results-dir ]] && results_dir="$2" || purejaxrl="$2"
            shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# paths given relative to where the script was started, before it moves to the repo root
[[ -n $results_dir && $results_dir != /* ]] && results_dir="$PWD/$results_dir"
[[ -n $purejaxrl && $purejaxrl != /* ]] && purejaxrl="$PWD/$purejaxrl"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
script_start=$(date +%s)

# --- sizes: the GPU run, or tiny ones that only prove the commands ------------------------
if [[ $mode == smoke ]]; then
    total_s="${GPU_CHECK_TOTAL_S:-2400}"
    tp_seeds=(1 2)
    tp_sizes=(--cartpole-timesteps 2000 --minatar-timesteps 2000 --max-seconds 5)
    ab_seeds=(1 2)
    cmp_args=(--seeds 1 2 --total-timesteps 11000 --skip-sb3)
    minatar_args=(--num-seeds 2 --total-timesteps 8000)
    pong_args=(--total-timesteps 1600 --buffer-size 800 --learning-starts 800
        --num-log-points 2 --eval-every 2 --eval-episodes 1 --eval-max-steps 50)
    pqn_tp_args=(--seeds 1 2 --pqn-timesteps 4096 --max-seconds 5)
    pqn_pong_args=(--num-envs 4 --num-steps 4 --num-minibatches 2 --total-timesteps 64
        --num-log-points 2 --eval-every 2 --eval-episodes 1 --eval-max-steps 50)
    budgets=(info=120 tp_cartpole=400 tp_minatar=400 tp_pqn=400 ab_paths=400 compare=300
        minatar=400 pqn_pong=500 pong=500)
else
    total_s="${GPU_CHECK_TOTAL_S:-470}"
    # up to the device's limit: throughput.py skips a count once it would not fit memory
    tp_seeds=(1 64 1024 4096 16384 65536 262144)
    tp_sizes=(--cartpole-timesteps 10000 --minatar-timesteps 10000 --max-seconds 12)
    ab_seeds=(1 64)  # two of tp_seeds, to set beside the standard paths' rows
    cmp_args=(--seeds 1 256 --total-timesteps 100000 --skip-sb3)
    minatar_args=(--num-seeds 4 --total-timesteps 500000)
    # as the README's CPU short run: 480k steps, 24 log points, greedy evaluation at the end
    pong_args=(--total-timesteps 480000 --buffer-size 100000 --learning-starts 10000
        --exploration-fraction 0.2 --exploration-final-eps 0.01 --double-q
        --num-log-points 24 --eval-every 24 --eval-episodes 8)
    # PQN: env steps/s against seeds, 24 CartPole / 48 Breakout iterations per point
    pqn_tp_args=(--seeds 1 64 1024 4096 16384 --pqn-timesteps 98304 --max-seconds 12)
    # as the 4M-step CPU run in benchmarks/README.md; the budget decides how far it gets
    pqn_pong_args=(--total-timesteps 4096000 --exploration-fraction 0.02
        --exploration-final-eps 0.001 --num-log-points 50 --eval-every 5)
    budgets=(info=25 tp_cartpole=60 tp_minatar=55 tp_pqn=55 ab_paths=50 compare=50 minatar=55
        pqn_pong=60 pong=55)
fi

budget_of() {
    local item
    for item in "${budgets[@]}"; do
        [[ ${item%%=*} == "$1" ]] && { echo "${item#*=}"; return; }
    done
    echo "gpu_check: no budget for step $1" >&2
    exit 2
}

# --- where results go ----------------------------------------------------------------------
if [[ $mode == dry ]]; then
    slug="<device>"
else
    read -r slug backend < <("$PY" -c 'import jax
d = jax.devices()[0]
kind = d.platform if d.platform == "cpu" else d.device_kind
print("".join(c if c.isalnum() else "-" for c in kind).strip("-"), jax.default_backend())')
    if [[ $mode == gpu && $backend == cpu ]]; then
        echo "gpu_check: JAX sees no accelerator (backend cpu); use --cpu-smoke or --dry-run" >&2
        exit 2
    fi
fi
if [[ -z $results_dir ]]; then
    if [[ $mode == smoke ]]; then
        results_dir="${TMPDIR:-/tmp}/purejaxdqn_gpu_check_smoke_$slug"
    else
        results_dir="benchmarks/results/gpu_check_$slug"
    fi
fi
if [[ $mode != dry ]]; then
    mkdir -p "$results_dir"
    printf 'step\tstatus\texit\tseconds\tbudget_s\tlog\tcommand\n' >"$results_dir/steps.tsv"
fi
echo "gpu_check: mode $mode, device $slug, results in $results_dir, total budget ${total_s} s"

# --- one step: print, time, stop at its budget, record ------------------------------------
record() {  # name status exit seconds budget log command
    [[ $mode == dry ]] && return
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results_dir/steps.tsv"
}

# step NAME COMMAND...: prints (and records) $shown instead of the command when set; an
# exit status equal to $missed_rc means the step ran but missed its target (learning.py)
step() {
    local name=$1 budget left log rc=0 start millis seconds status command
    shift
    command="${shown:-$*}"
    shown=""
    budget=$(budget_of "$name")
    left=$((total_s - ($(date +%s) - script_start) - 10))
    ((budget > left)) && budget=$left
    ((budget < 0)) && budget=0
    echo
    echo "=== [$name] budget ${budget} s: $command"
    if [[ $mode == dry ]]; then
        return
    fi
    log="$results_dir/$name.log"
    if ((budget < 20)); then
        echo "[$name] skipped: the run's total budget is spent"
        record "$name" skipped "" 0 "$budget" "" "$command"
        missed_rc=""
        return
    fi
    start=$(date +%s%N)
    timeout -k 30 "$budget" "$@" 2>&1 | tee "$log" || rc=$?
    millis=$((($(date +%s%N) - start) / 1000000))
    seconds=$(printf '%d.%03d' $((millis / 1000)) $((millis % 1000)))
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        "${missed_rc:-0}") status=target_missed ;;
        *) status=failed ;;
    esac
    missed_rc=""
    printf '[%s] %s (exit %s) in %s s\n' "$name" "$status" "$rc" "$seconds"
    record "$name" "$status" "$rc" "$seconds" "$budget" "$log" "$command"
}

skip() {  # skip NAME REASON
    echo
    echo "=== [$1] skipped: $2"
    record "$1" skipped "" 0 0 "" "$2"
}

INFO_PY='import importlib.metadata, json, os, platform, sys
import jax
from purejaxdqn import backend
jax.print_environment_info()
devices = jax.devices()

def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None

info = {
    "backend": jax.default_backend(),
    "devices": [str(d) for d in devices],
    "device_kind": devices[0].device_kind,
    "description": f"{devices[0].platform} ({devices[0].device_kind}) x{len(devices)}",
    "memory_stats": {k: v for k, v in (devices[0].memory_stats() or {}).items()
                     if k in ("bytes_limit", "bytes_in_use", "peak_bytes_in_use")},
    "workarounds": vars(backend.workarounds()),
    "workarounds_override": os.environ.get(backend.ENV_VAR),
    "xla_flags": os.environ.get("XLA_FLAGS"),
    "versions": {"python": platform.python_version(), **{name: version(name) for name in (
        "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "flax", "optax", "gymnax",
        "envpool", "numpy", "purejaxdqn")}},
}
print(json.dumps(info, indent=2))
with open(sys.argv[1], "w") as file:
    json.dump(info, file, indent=2)
    file.write("\n")'

# shellcheck disable=SC2016  # expanded by the inner bash
INFO_SH='if command -v nvidia-smi >/dev/null; then
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
else
    echo "nvidia-smi: not found"
fi
"$1" -c "$2" "$3"'

# --- the steps -----------------------------------------------------------------------------
shown="nvidia-smi; $PY -c <jax.print_environment_info(), jax.devices(), memory, versions,"
shown+=" backend.workarounds()> $results_dir/devices.json"
step info bash -c "$INFO_SH" info "$PY" "$INFO_PY" "$results_dir/devices.json"

# one env per step, so that a step cut by its timeout loses only its own env's table
step tp_cartpole "$PY" benchmarks/throughput.py --env CartPole-v1 \
    --seeds "${tp_seeds[@]}" "${tp_sizes[@]}" --results-dir "$results_dir/tp_cartpole"

step tp_minatar "$PY" benchmarks/throughput.py --env Breakout-MinAtar \
    --seeds "${tp_seeds[@]}" "${tp_sizes[@]}" --results-dir "$results_dir/tp_minatar"

step tp_pqn "$PY" benchmarks/throughput.py --algo pqn --env CartPole-v1 Breakout-MinAtar \
    "${pqn_tp_args[@]}" --results-dir "$results_dir/tp_pqn"

step ab_paths env PUREJAXDQN_WORKAROUNDS=fast_threefry=1,patch_conv=1 \
    "$PY" benchmarks/throughput.py --env CartPole-v1 Breakout-MinAtar \
    --seeds "${ab_seeds[@]}" "${tp_sizes[@]}" --results-dir "$results_dir/ab_paths"

if [[ -z $purejaxrl ]]; then
    skip compare "no purejaxrl: pass --purejaxrl PATH or set PUREJAXRL_PATH (a clone of \
https://github.com/luchris429/purejaxrl) to compare against it"
elif [[ ! -e $purejaxrl ]]; then
    skip compare "purejaxrl path $purejaxrl does not exist"
elif [[ $mode != dry ]] && ! "$PY" -c 'import flashbax' 2>/dev/null; then
    skip compare "purejaxrl needs flashbax, which is not installed (pip install flashbax)"
else
    step compare "$PY" benchmarks/compare.py "${cmp_args[@]}" --purejaxrl "$purejaxrl" \
        --results-dir "$results_dir/compare"
fi

missed_rc=1  # learning.py: the run finished below the preset's target (expected: short run)
step minatar "$PY" benchmarks/learning.py --env Breakout-MinAtar "${minatar_args[@]}" \
    --results-dir "$results_dir/learning"

if [[ $mode != dry ]] && ! "$PY" -c 'import envpool' 2>/dev/null; then
    skip pqn_pong "envpool is not installed (pip install -e '.[envpool]')"
    skip pong "envpool is not installed (pip install -e '.[envpool]')"
else
    [[ $mode != dry ]] && rm -rf "$results_dir/pqn_pong"
    step pqn_pong "$PY" -m purejaxdqn.cli train --algo pqn --env PongNoFrameskip-v4 \
        --num-seeds 1 --seed 0 "${pqn_pong_args[@]}" --output-dir "$results_dir/pqn_pong"
    [[ $mode != dry ]] && rm -rf "$results_dir/pong"
    step pong "$PY" -m purejaxdqn.cli train --env PongNoFrameskip-v4 --num-seeds 1 --seed 0 \
        "${pong_args[@]}" --output-dir "$results_dir/pong"
    if [[ -d $results_dir/pong/checkpoints ]]; then  # written when the timeout stopped it
        echo "[pong] removing its checkpoint (the whole replay buffer) from the results"
        rm -rf "$results_dir/pong/checkpoints"
    fi
fi

# --- summary -------------------------------------------------------------------------------
[[ $mode == dry ]] && exit 0
elapsed=$(($(date +%s) - script_start))
"$PY" - "$results_dir" "$elapsed" "$mode" <<'EOF'
import csv, json, sys
from pathlib import Path

folder, elapsed, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(folder / "steps.tsv") as file:
    steps = list(csv.DictReader(file, delimiter="\t"))
device = json.loads((folder / "devices.json").read_text()) if (folder / "devices.json").exists() else {}
summary = {"mode": mode, "elapsed_seconds": elapsed, "device": device.get("description"), "steps": steps}
(folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
lines = [f"gpu_check ({mode}) on {summary['device']}: {elapsed} s in all", "",
         "| step | status | exit | seconds | budget s |", "|---|---|---|---|---|"]
lines += [f"| {s['step']} | {s['status']} | {s['exit']} | {float(s['seconds'] or 0):.1f} | {s['budget_s']} |"
          for s in steps]
(folder / "summary.md").write_text("\n".join(lines) + "\n")
print("\n" + "\n".join(lines))
EOF
echo "gpu_check: results in $results_dir"
