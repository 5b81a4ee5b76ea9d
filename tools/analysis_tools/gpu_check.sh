#!/usr/bin/env bash
# One-command GPU check of soc_mm on a Linux machine with an NVIDIA GPU: build the CUDA stack in a venv,
# compare with the official model's golden tensors on the GPU, train a few AMP steps, benchmark fp32 / AMP.
# Run from anywhere (it works in the repository root); `--help` lists the steps and options.
set -u -o pipefail

usage() {
    cat <<'EOF'
Usage: bash tools/analysis_tools/gpu_check.sh [options]

Steps (each timed; output in the log; a failed step shows its command and last log lines, and the
run goes on with every step that does not depend on it):
  1  build   a venv with the CUDA stack, as `make venv` does (requirements/*.txt, constraints.txt):
     1a venv         python3 -m venv (default .venv-gpu) + requirements/build.txt
     1b torch        the pinned torch of requirements/runtime.txt, CUDA build from the official PyTorch
                     wheel index https://download.pytorch.org/whl/cuXXX chosen from nvidia-smi's CUDA
                     version (newest index the driver runs; older ones tried if the torch version is
                     missing there); TORCH_INDEX_URL overrides the index
     1c mmengine     the pinned mmengine
     1d nvcc         a CUDA_HOME whose nvcc has torch's CUDA major version: a system toolkit
                     ($CUDA_HOME, nvcc on PATH, /usr/local/cuda*) or NVIDIA's nvcc pip wheels
     1e mmcv         mmcv 2.1.0 from source with its CUDA ops: MMCV_WITH_OPS=1 FORCE_CUDA=1,
                     TORCH_CUDA_ARCH_LIST = this GPU's compute capability only, MAX_JOBS=$(nproc),
                     --no-build-isolation; the wheel is kept in the wheel cache for the next run
     1f requirements the rest of runtime.txt + tests.txt, then `pip install -e .`
  2  golden  2a stack: versions, GPU, mmcv's CUDA MSDA op against its PyTorch implementation;
             2b compare_with_reference.py --device cuda: the official model's golden tensors (CPU)
             against our model on the GPU (fused and reference kernels, same tolerances)
  3  train   AMP training steps (tools/train.py --amp: MMEngine's AmpOptimWrapper, fp16) of
             configs/soc/soc_tiny_synthetic.py on synthetic data: finite losses, and the mean of the
             last 5 below the mean of the first 5
  4  bench   4a benchmark.py --device cuda (Swin-T, 8 frames 360x640, 4 expressions, fp32);
             4b fp32 vs AMP (fp16, bf16) eval forward and train step of the Swin-T SOC
Then a summary table (step, ok/FAILED, seconds, key numbers), also at the end of the log.

Options:
  --venv DIR           venv to build / use (default .venv-gpu)
  --skip-build         reuse an existing venv (step 1 skipped; its imports are checked)
  --steps LIST         comma-separated subset of build,golden,train,bench (default: all)
  --work-dir DIR       logs, synthetic data, training runs (default work_dirs/gpu_check)
  --log FILE           the log (default WORK_DIR/gpu_check_<time>.log)
  --train-steps N      AMP training iterations (default 20)
  --compute-cap X.Y    the GPU's compute capability (default: nvidia-smi --query-gpu=compute_cap)
  --cuda-version X.Y   the driver's CUDA version (default: nvidia-smi's "CUDA Version")
  --dry-run            print the commands (with TORCH_CUDA_ARCH_LIST and the torch index) and exit
  -h, --help           this help
Environment: PYTHON (default python3), TORCH_INDEX_URL (torch wheel index), SOC_GPU_WHEEL_CACHE
(built mmcv wheels, default ~/.cache/soc_mm/gpu_wheels), MAX_JOBS (default nproc), CUDA_HOME.
EOF
}

# ---------------------------------------------------------------------------------- options
VENV=.venv-gpu
SKIP_BUILD=0
DRY_RUN=0
STEPS=build,golden,train,bench
WORK_DIR=work_dirs/gpu_check
LOG=
TRAIN_STEPS=20
COMPUTE_CAP=
CUDA_VERSION=
PYTHON=${PYTHON:-python3}

die_usage() { echo "gpu_check.sh: $1 (see --help)" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] && [[ "$2" != --* ]] || die_usage "$1 needs a value"; }

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --venv) need_value "$@"; VENV=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --steps) need_value "$@"; STEPS=$2; shift 2 ;;
        --work-dir) need_value "$@"; WORK_DIR=$2; shift 2 ;;
        --log) need_value "$@"; LOG=$2; shift 2 ;;
        --train-steps) need_value "$@"; TRAIN_STEPS=$2; shift 2 ;;
        --compute-cap) need_value "$@"; COMPUTE_CAP=$2; shift 2 ;;
        --cuda-version) need_value "$@"; CUDA_VERSION=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done
for step in ${STEPS//,/ }; do
    case "$step" in build|golden|train|bench) ;; *) die_usage "--steps: unknown step '$step'" ;; esac
done
[[ "$TRAIN_STEPS" =~ ^[0-9]+$ ]] && [ "$TRAIN_STEPS" -ge 10 ] || die_usage "--train-steps must be a number >= 10"
[ -z "$COMPUTE_CAP" ] || [[ "$COMPUTE_CAP" =~ ^[0-9]+\.[0-9]+$ ]] || die_usage "--compute-cap must look like 9.0"
[ -z "$CUDA_VERSION" ] || [[ "$CUDA_VERSION" =~ ^[0-9]+\.[0-9]+$ ]] || die_usage "--cuda-version must look like 12.4"
[ "$SKIP_BUILD" = 1 ] && STEPS=$(echo ",$STEPS," | sed 's/,build,/,/; s/^,//; s/,$//')
wants() { [[ ",$STEPS," == *",$1,"* ]]; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 2

# ---------------------------------------------------------------------------------- pure helpers
# "9.0" "9.0" "8.6" -> "8.6;9.0": every distinct compute capability of the machine's GPUs
arch_list() { printf '%s\n' "$@" | tr -s ',; ' '\n' | sed '/^$/d' | sort -u -V | paste -sd';' -; }

# PyTorch's CUDA wheel indexes, newest first. Which of them hold a given torch version changes with
# every release: the ones the driver can run are tried in turn.
KNOWN_CUDA_TAGS="cu132 cu131 cu130 cu129 cu128 cu126 cu124 cu121 cu118"
# "12.4" -> "cu124 cu121 cu118": the indexes whose CUDA version the driver supports, newest first
cuda_tags_for_driver() {
    local major=${1%%.*} minor=${1#*.} tag v out=""
    minor=${minor%%.*}
    for tag in $KNOWN_CUDA_TAGS; do
        v=${tag#cu}
        if (( ${v:0:2} * 100 + ${v:2} <= major * 100 + minor )); then out+="$tag "; fi
    done
    echo "${out% }"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
torch_pin() { grep -m1 '^torch==' requirements/runtime.txt; }
pin_of() { grep -m1 "^$1==" requirements/runtime.txt; }

# ---------------------------------------------------------------------------------- the machine
TORCH_PIN=$(torch_pin)
TORCH_VERSION=${TORCH_PIN#torch==}
GPU_INFO="(nvidia-smi not queried)"
if [ "$DRY_RUN" = 0 ] || [ -z "$COMPUTE_CAP" ] || [ -z "$CUDA_VERSION" ]; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        GPU_INFO=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4)
        [ -n "$COMPUTE_CAP" ] || COMPUTE_CAP=$(arch_list "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null)")
        [ -n "$CUDA_VERSION" ] || CUDA_VERSION=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -1)
    elif [ "$DRY_RUN" = 0 ]; then
        echo "gpu_check.sh: nvidia-smi not found: no NVIDIA driver on this machine (this check needs one GPU)" >&2
        exit 1
    fi
fi
ARCH_LIST=$(arch_list "${COMPUTE_CAP:-}")
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    TORCH_INDEXES=("$TORCH_INDEX_URL")
    TORCH_SPECS=("$TORCH_PIN")
else
    TORCH_INDEXES=(); TORCH_SPECS=()
    for tag in $(cuda_tags_for_driver "${CUDA_VERSION:-0.0}"); do
        TORCH_INDEXES+=("https://download.pytorch.org/whl/$tag")
        TORCH_SPECS+=("$TORCH_PIN+$tag")  # the local label keeps pip from taking a CPU or PyPI wheel
    done
fi

PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)
CONSTRAINTS=(-c requirements/constraints.txt)
TORCH_CONSTRAINT="$VENV/torch-constraint.txt"  # written after step 1b: no later pip call moves torch
WHEEL_CACHE=${SOC_GPU_WHEEL_CACHE:-$HOME/.cache/soc_mm/gpu_wheels}
JOBS=${MAX_JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}  # nproc alone obeys OMP_NUM_THREADS
MMCV_PIN=$(pin_of mmcv)
TRAIN_CMD=("$PY" tools/analysis_tools/gpu_check.py train --steps "$TRAIN_STEPS" --amp-dtype float16
           --work-dir "$WORK_DIR/train")
AMP_BENCH_CMD=("$PY" tools/analysis_tools/gpu_check.py bench --frames 8 --size 360 640 --repeat 5)
GOLDEN_CMD=("$PY" tools/analysis_tools/compare_with_reference.py tests/data/soc_reference --device cuda --threads 4)
BENCHMARK_CMD=("$PY" tools/analysis_tools/benchmark.py configs/_base_/models/soc_swin-t.py
               --cfg-options model.text_encoder.model_path=tests/data/soc_reference/common/text_encoder
               model.backbone.init_cfg=None --device cuda --frames 8 --size 360 640 --expressions 4
               --repeat 3 --no-flops)

if [ "$DRY_RUN" = 1 ]; then
    echo "# gpu_check.sh --dry-run: nothing is run; commands of the selected steps ($STEPS)"
    echo "# GPU: $GPU_INFO; compute capability: ${COMPUTE_CAP:-unknown (pass --compute-cap)}; driver CUDA: ${CUDA_VERSION:-unknown (pass --cuda-version)}"
    if wants build; then
        echo "# 1a venv"
        echo "$PYTHON -m venv $VENV"
        echo "${PIP[*]} ${CONSTRAINTS[*]} -r requirements/build.txt"
        if [ -z "$CUDA_VERSION" ] && [ -z "${TORCH_INDEX_URL:-}" ]; then
            no_index="unknown: pass --cuda-version (nvidia-smi's CUDA Version) or set TORCH_INDEX_URL"
        else
            no_index="NONE: driver CUDA $CUDA_VERSION is older than every known index ($KNOWN_CUDA_TAGS)"
        fi
        echo "# 1b torch: $TORCH_PIN, CUDA build; torch index: ${TORCH_INDEXES[0]:-$no_index}"
        [ ${#TORCH_INDEXES[@]} -gt 1 ] && echo "#    then, if $TORCH_VERSION is not on it: ${TORCH_INDEXES[*]:1}"
        [ ${#TORCH_INDEXES[@]} -gt 0 ] && echo "${PIP[*]} ${CONSTRAINTS[*]} --index-url ${TORCH_INDEXES[0]} --extra-index-url <pip's own index> \"${TORCH_SPECS[0]}\""
        echo "# 1c mmengine"
        echo "${PIP[*]} ${CONSTRAINTS[*]} -c $TORCH_CONSTRAINT \"$(pin_of mmengine)\""
        echo "# 1d nvcc (system toolkit of torch's CUDA major version, else NVIDIA's pip wheels)"
        echo "$PY tools/analysis_tools/gpu_check.py cuda-home --install -c requirements/constraints.txt -c $TORCH_CONSTRAINT"
        echo "# 1e mmcv with CUDA ops, for compute capability ${ARCH_LIST:-unknown} only; meanwhile, in the background:"
        echo "${PIP[*]} ${CONSTRAINTS[*]} -c $TORCH_CONSTRAINT -r <requirements/runtime.txt + tests.txt without mmcv, mmdet, mmsegmentation, mmaction2>"
        echo "MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=\"${ARCH_LIST:-<compute_cap>}\" MAX_JOBS=$JOBS CUDA_HOME=<step 1d> $PY -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation --no-binary mmcv --no-cache-dir ${CONSTRAINTS[*]} -c $TORCH_CONSTRAINT -w $WHEEL_CACHE/<mmcv, torch, arch> \"$MMCV_PIN\""
        echo "${PIP[*]} ${CONSTRAINTS[*]} -c $TORCH_CONSTRAINT $WHEEL_CACHE/<mmcv, torch, arch>/mmcv-*.whl"
        echo "# 1f requirements"
        echo "${PIP[*]} ${CONSTRAINTS[*]} -c $TORCH_CONSTRAINT -r requirements/runtime.txt -r requirements/tests.txt"
        echo "${PIP[*]} ${CONSTRAINTS[*]} -c $TORCH_CONSTRAINT --no-build-isolation --no-deps -e ."
    fi
    if wants golden; then
        echo "# 2 golden"
        echo "$PY tools/analysis_tools/gpu_check.py stack"
        echo "${GOLDEN_CMD[*]}"
    fi
    if wants train; then
        echo "# 3 train"
        echo "${TRAIN_CMD[*]}"
    fi
    if wants bench; then
        echo "# 4 bench"
        echo "${BENCHMARK_CMD[*]}"
        echo "${AMP_BENCH_CMD[*]}"
    fi
    exit 0
fi

# ---------------------------------------------------------------------------------- running steps
mkdir -p "$WORK_DIR/logs" || exit 1
STAMP=$(date +%Y%m%d_%H%M%S)
LOG=${LOG:-$WORK_DIR/gpu_check_$STAMP.log}
mkdir -p "$(dirname "$LOG")" && : > "$LOG" || exit 1
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

ROWS=()            # summary rows "step|result|seconds|key numbers"
declare -A STATUS  # step id -> ok / FAILED / skipped
declare -A STEP_LOG  # step id -> its log
T_START=$(now)
STEP_NO=0

# run_step ID TITLE TIMEOUT_S CMD...: run CMD (its output into WORK_DIR/logs/<n>_<id>.log and the log),
# time it, collect its "RESULT k=v" lines; on failure print the command, its first error lines and its tail.
run_step() {
    local id=$1 title=$2 limit=$3; shift 3
    STEP_NO=$((STEP_NO + 1))
    local step_log
    step_log="$WORK_DIR/logs/$(printf '%02d' $STEP_NO)_$id.log"
    echo
    echo "=== [$id] $title ($(date +%H:%M:%S); log: $step_log)"
    echo "\$ $*"
    STEP_LOG[$id]=$step_log
    local t0 code
    t0=$(now)
    if declare -F "$1" >/dev/null; then
        "$@" > "$step_log" 2>&1  # a function of this script: its commands carry their own time limits
    else
        timeout --kill-after=30 "$limit" "$@" > "$step_log" 2>&1
    fi
    code=$?
    local secs
    secs=$(elapsed "$t0")
    local keys
    keys=$(sed -n 's/^RESULT //p' "$step_log" | paste -sd' ' -)
    { echo "----- output of [$id]"; cat "$step_log"; echo "----- end of [$id] (exit $code)"; } >> "$LOG"
    if [ $code -eq 0 ]; then
        STATUS[$id]=ok
        echo "[$id] ok in ${secs} s${keys:+: $keys}"
    else
        STATUS[$id]=FAILED
        [ $code -eq 124 ] || [ $code -eq 137 ] && keys="timed out after ${limit} s; $keys"
        echo "[$id] FAILED (exit $code) after ${secs} s: $title"
        if declare -F "$1" >/dev/null; then
            echo "    command: $(grep '^\$ ' "$step_log" | tail -n 1 | cut -c3-)"
        else
            echo "    command: $*"
        fi
        echo "    first error lines:"
        grep -n -iE '(^|[^a-z_])(error|failed|fatal|traceback)' "$step_log" | grep -v -e ':RESULT ' -e 'Warning:' | head -n 12 |
            cut -c1-400 | sed 's/^/      /'
        echo "    last lines of $step_log:"
        tail -n 25 "$step_log" | sed 's/^/      /'
    fi
    ROWS+=("$id|${STATUS[$id]}|$secs|$title${keys:+ — $keys}")
    return $code
}

skip_step() {  # skip_step ID TITLE REASON
    STATUS[$1]=skipped
    ROWS+=("$1|skipped|0|$2 — $3")
    echo
    echo "=== [$1] $2: skipped ($3)"
}

all_ok() { local id; for id in "$@"; do [ "${STATUS[$id]:-}" = ok ] || return 1; done; }

show_run() { echo "\$ $*"; "$@"; }  # a step function's command, shown in its log, then run

echo "gpu_check.sh $(date -Iseconds) in $REPO; log: $LOG (each step's output also in $WORK_DIR/logs/)"
echo "GPU: $GPU_INFO; compute capability ${COMPUTE_CAP:-?} -> TORCH_CUDA_ARCH_LIST=${ARCH_LIST:-?}; driver CUDA ${CUDA_VERSION:-?}; build jobs $JOBS"
if command -v nvcc >/dev/null 2>&1; then
    echo "nvcc on PATH: $(command -v nvcc) ($(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
else
    echo "nvcc: not on PATH (step 1d takes \$CUDA_HOME, /usr/local/cuda* or NVIDIA's nvcc pip wheels)"
fi

# ---------------------------------------------------------------------------------- 1 build
step_venv() {
    if [ ! -x "$PY" ]; then
        show_run "$PYTHON" -m venv "$VENV" || {
            echo "'$PYTHON -m venv $VENV' failed: on Debian/Ubuntu install python3-venv; PYTHON=... picks another python"
            return 1
        }
    fi
    "$PY" --version && show_run timeout 600 "${PIP[@]}" "${CONSTRAINTS[@]}" -r requirements/build.txt &&
        echo "RESULT python=$("$PY" -c 'import platform; print(platform.python_version())')"
}

step_torch() {
    local i code=1
    for i in "${!TORCH_INDEXES[@]}"; do
        local extra
        extra=${PIP_INDEX_URL:-$("$PY" -m pip config get global.index-url 2>/dev/null || echo https://pypi.org/simple)}
        echo "--- trying ${TORCH_SPECS[$i]} from ${TORCH_INDEXES[$i]} (other packages from $extra)"
        show_run timeout 900 "${PIP[@]}" "${CONSTRAINTS[@]}" --index-url "${TORCH_INDEXES[$i]}" --extra-index-url "$extra" \
            "${TORCH_SPECS[$i]}"
        code=$?
        [ $code -eq 0 ] && break
    done
    if [ $code -ne 0 ]; then
        echo "no CUDA build of $TORCH_PIN installed from: ${TORCH_INDEXES[*]:-no index (driver CUDA ${CUDA_VERSION:-?} older than $KNOWN_CUDA_TAGS)}"
        echo "update the NVIDIA driver, or set TORCH_INDEX_URL to an index holding a CUDA build of torch $TORCH_VERSION"
        return 1
    fi
    "$PY" - "$TORCH_CONSTRAINT" <<'EOF'
import sys
import torch
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, GPU visible: {torch.cuda.is_available()}')
if not torch.version.cuda:
    sys.exit(f'torch {torch.__version__} is not a CUDA build')
if not torch.cuda.is_available():
    sys.exit(f'torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use the GPU: is the driver older '
             'than this CUDA version (nvidia-smi)?')
open(sys.argv[1], 'w').write(f'torch=={torch.__version__}\n')
print(f'RESULT torch={torch.__version__} cuda={torch.version.cuda}')
EOF
}

# The requirements that do not depend on mmcv (not mmdet, mmsegmentation, mmaction2): installed while
# mmcv compiles (pip is mostly network and disk, the build the CPU), so that step 1f is short.
OPENMMLAB_ON_MMCV='^(mmcv|mmdet|mmsegmentation|mmaction2)=='
PREFETCH_REQS="$VENV/gpu-check-requirements-without-mmcv.txt"
prefetch_requirements() {
    grep -hvE "$OPENMMLAB_ON_MMCV" requirements/runtime.txt requirements/tests.txt > "$PREFETCH_REQS" &&
        show_run timeout 900 "${PIP[@]}" "${CONSTRAINTS[@]}" -c "$TORCH_CONSTRAINT" -r "$PREFETCH_REQS"
}

step_mmcv() {
    local cuda_home=$1 torch_full key dir prefetch_pid code
    torch_full=$(sed -n 's/^torch==//p' "$TORCH_CONSTRAINT")
    prefetch_requirements > "$WORK_DIR/logs/requirements_during_mmcv_build.log" 2>&1 &
    prefetch_pid=$!
    echo "installing the requirements that do not need mmcv meanwhile (pid $prefetch_pid, log: $WORK_DIR/logs/requirements_during_mmcv_build.log)"
    build_mmcv "$cuda_home" "$torch_full"
    code=$?
    wait "$prefetch_pid" && echo "requirements without mmcv: installed" ||
        echo "requirements without mmcv: pip failed (step 1f installs them again; see the log above)"
    return $code
}

build_mmcv() {
    local cuda_home=$1 torch_full=$2 key dir
    key="${MMCV_PIN#mmcv==}-torch$torch_full-sm${ARCH_LIST//[.;]/}"
    dir="$WHEEL_CACHE/mmcv-$key"
    if ls "$dir"/mmcv-*.whl >/dev/null 2>&1; then
        echo "reusing the mmcv wheel built before: $(ls "$dir"/mmcv-*.whl)"
    else
        # the venv's bin first on PATH: torch's BuildExtension compiles in parallel only when it finds
        # `ninja` there (requirements/build.txt installs it into the venv), else one file at a time
        if ! command -v "${CXX:-g++}" >/dev/null 2>&1; then
            echo "no C++ compiler (${CXX:-g++}) for the mmcv build: install one (Debian/Ubuntu: apt-get install g++)"
            return 1
        fi
        if ! "$PY" -c "import os, sysconfig, sys; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then
            echo "no Python.h for $("$PY" --version): install the Python headers (Debian/Ubuntu: apt-get install python3-dev)"
            return 1
        fi
        local build_path
        build_path="$cuda_home/bin:$(cd "$(dirname "$PY")" && pwd):$PATH"
        echo "building $MMCV_PIN with CUDA ops: CUDA_HOME=$cuda_home TORCH_CUDA_ARCH_LIST=$ARCH_LIST MAX_JOBS=$JOBS," \
            "ninja $(PATH=$build_path command -v ninja || echo 'NOT FOUND: one file at a time')"
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" || return 1
        show_run timeout 1500 env MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH_LIST" MAX_JOBS="$JOBS" CUDA_HOME="$cuda_home" \
            PATH="$build_path" \
            "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation --no-binary mmcv \
            --no-cache-dir "${CONSTRAINTS[@]}" -c "$TORCH_CONSTRAINT" -w "$dir.tmp" "$MMCV_PIN" || {
            echo "mmcv ${MMCV_PIN#mmcv==} did not compile against torch $torch_full with $cuda_home/bin/nvcc."
            echo "Known: mmcv 2.1.0 is the last release the OpenMMLab 3.x stack accepts (mmdet 3.3 / mmseg 1.2 /"
            echo "mmaction2 1.2 assert mmcv < 2.2.0); its CPU ops build against torch $TORCH_VERSION (STACK.md)."
            echo "Options: a CUDA toolkit of torch's exact CUDA version (CUDA_HOME=...), extra nvcc flags in"
            echo "MMCV_CUDA_ARGS, or an older torch CUDA build through TORCH_INDEX_URL."
            return 1
        }
        rm -rf "$dir" && mv "$dir.tmp" "$dir" || return 1
    fi
    show_run timeout 600 "${PIP[@]}" "${CONSTRAINTS[@]}" -c "$TORCH_CONSTRAINT" "$dir"/mmcv-*.whl || return 1
    "$PY" - <<'EOF'
import sys
from mmcv.ops import get_compiling_cuda_version
from mmcv.ops.multi_scale_deform_attn import ext_module
cuda = get_compiling_cuda_version()
if cuda == 'not available':
    sys.exit('mmcv was built without CUDA ops')
print(f'mmcv ops compiled with CUDA {cuda}; MSDA op {ext_module.__name__}.ms_deform_attn_forward loads')
print(f'RESULT mmcv_cuda={cuda}')
EOF
}

step_requirements() {
    show_run timeout 900 "${PIP[@]}" "${CONSTRAINTS[@]}" -c "$TORCH_CONSTRAINT" -r requirements/runtime.txt \
        -r requirements/tests.txt &&
        show_run timeout 300 "${PIP[@]}" "${CONSTRAINTS[@]}" -c "$TORCH_CONSTRAINT" --no-build-isolation --no-deps -e . &&
        "$PY" -c "import torch, mmcv, mmdet, mmseg, soc_mm; print('RESULT imports=ok torch=' + torch.__version__)"
}

if wants build; then
    run_step 1a-venv "venv $VENV + requirements/build.txt" 600 step_venv
    if all_ok 1a-venv; then
        if [ ${#TORCH_INDEXES[@]} -eq 0 ]; then
            echo "driver CUDA ${CUDA_VERSION:-?} is older than every known torch CUDA index ($KNOWN_CUDA_TAGS); set TORCH_INDEX_URL"
        fi
        run_step 1b-torch "$TORCH_PIN, CUDA build (${TORCH_INDEXES[0]:-no index})" 900 step_torch
    else
        skip_step 1b-torch "$TORCH_PIN" "needs 1a-venv"
    fi
    if all_ok 1b-torch; then
        run_step 1c-mmengine "$(pin_of mmengine)" 600 \
            "${PIP[@]}" "${CONSTRAINTS[@]}" -c "$TORCH_CONSTRAINT" "$(pin_of mmengine)"
        run_step 1d-nvcc "nvcc of torch's CUDA major version (CUDA_HOME)" 900 \
            "$PY" tools/analysis_tools/gpu_check.py cuda-home --install -c requirements/constraints.txt -c "$TORCH_CONSTRAINT"
    else
        skip_step 1c-mmengine "$(pin_of mmengine)" "needs 1b-torch"
        skip_step 1d-nvcc "nvcc" "needs 1b-torch"
    fi
    if all_ok 1c-mmengine 1d-nvcc; then
        CUDA_HOME_FOUND=$(sed -n 's/^CUDA_HOME=//p' "${STEP_LOG[1d-nvcc]}" | tail -1)
        run_step 1e-mmcv "$MMCV_PIN with CUDA ops (TORCH_CUDA_ARCH_LIST=$ARCH_LIST, MAX_JOBS=$JOBS)" 1500 \
            step_mmcv "$CUDA_HOME_FOUND"
    else
        skip_step 1e-mmcv "$MMCV_PIN" "needs 1c-mmengine and 1d-nvcc"
    fi
    if all_ok 1e-mmcv; then
        run_step 1f-requirements "requirements/runtime.txt + tests.txt, pip install -e ." 900 step_requirements
    else
        skip_step 1f-requirements "requirements, soc_mm" "needs 1e-mmcv (pip would build mmcv without CUDA)"
    fi
    STACK_OK=$(all_ok 1f-requirements && echo 1 || echo 0)
else
    run_step 1-venv-check "--skip-build: the stack in $VENV imports" 300 \
        "$PY" -c "import torch, mmcv, mmdet, mmseg, soc_mm; print('RESULT torch=' + torch.__version__ + ' cuda=' + str(torch.version.cuda))"
    STACK_OK=$(all_ok 1-venv-check && echo 1 || echo 0)
fi

# ---------------------------------------------------------------------------------- 2-4 checks

step_golden() {  # compare_with_reference.py on CUDA; counts its rows and mmcv CUDA MSDA calls
    local out="$WORK_DIR/logs/golden_table.txt" code
    show_run timeout 900 "${GOLDEN_CMD[@]}" 2>&1 | tee "$out"
    code=${PIPESTATUS[0]}
    awk '/ yes$/ {ok++} / NO$/ {bad++} /^mmcv CUDA MSDA kernel calls:/ {calls += $NF}
         END {printf "RESULT quantities_ok=%d quantities_failed=%d msda_cuda_calls=%d\n", ok, bad, calls}' "$out"
    return "$code"
}

step_benchmark() {  # benchmark.py on CUDA (its options and table are its own; key rows picked when present)
    local out="$WORK_DIR/logs/benchmark_table.txt" code
    show_run timeout 900 "${BENCHMARK_CMD[@]}" 2>&1 | tee "$out"
    code=${PIPESTATUS[0]}
    awk -F'|' '/^\| soc_mm, default \(fused kernels\) \|/ {gsub(/ /, "", $3); fused = $3}
               /^\| soc_mm: backbone once.*fastest/ {gsub(/ /, "", $3); shared = $3}
               END {if (fused != "") printf "RESULT fused_s_per_forward=%s shared_total_s=%s\n", fused, shared}' "$out"
    return "$code"
}
if wants golden; then
    if [ "$STACK_OK" = 1 ]; then
        run_step 2a-stack "GPU, versions, mmcv CUDA MSDA vs its PyTorch implementation" 300 \
            "$PY" tools/analysis_tools/gpu_check.py stack
        run_step 2b-golden "golden tensors of the official model vs our model on CUDA (both kernel sets)" 900 \
            step_golden
    else
        skip_step 2a-stack "stack" "the venv is not ready"
        skip_step 2b-golden "golden tensors on CUDA" "the venv is not ready"
    fi
fi
if wants train; then
    if [ "$STACK_OK" = 1 ]; then
        run_step 3-amp-train "$TRAIN_STEPS AMP (fp16) training steps, tiny SOC, tools/train.py --amp" 900 \
            "${TRAIN_CMD[@]}"
    else
        skip_step 3-amp-train "AMP training steps" "the venv is not ready"
    fi
fi
if wants bench; then
    if [ "$STACK_OK" = 1 ]; then
        run_step 4a-benchmark "benchmark.py --device cuda (fp32, Swin-T, 8x360x640, 4 expressions)" 900 \
            step_benchmark
        run_step 4b-amp-bench "fp32 vs AMP eval forward and train step (Swin-T, 8x360x640)" 900 \
            "${AMP_BENCH_CMD[@]}"
    else
        skip_step 4a-benchmark "benchmark.py" "the venv is not ready"
        skip_step 4b-amp-bench "AMP benchmark" "the venv is not ready"
    fi
fi

# ---------------------------------------------------------------------------------- summary
FAILED=0
echo
echo "=== summary ($(elapsed "$T_START") s in all; log: $LOG)"
echo "| step | result | seconds | what, key numbers |"
echo "|---|---|---|---|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r id res secs what <<< "$row"
    echo "| $id | $res | $secs | $what |"
    [ "$res" = ok ] || FAILED=1
done
if [ "$FAILED" = 0 ]; then
    echo "all steps ok"
else
    echo "some steps FAILED or were skipped: see their output above and in $WORK_DIR/logs/"
fi
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null  # the log is complete when the script returns
exit $FAILED
