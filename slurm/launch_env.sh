# Launch logic of slurm/perlmutter_16gpu.sbatch, sourced by it (and by tests/test_slurm_launch.py,
# which simulates SLURM's variables for 2 tasks on one machine). Bash functions only; nothing
# runs on source except defaults.
#
# Settings (environment variables, all optional):
#   FFJORD_BACKEND     tf | horovod | auto | none        (default tf)
#   FFJORD_MODEL       --model_name of train_parallel.py: moon, mnist, digits, calorimeter,
#                      jets, muons or klm                  (default calorimeter)
#   FFJORD_OUT         output folder of the job chain     (default runs/perlmutter_<model>_<backend>)
#   FFJORD_DATA        --data_folder (the CaloGAN HDF5 file for calorimeter, the folder of
#                      train_*.h5 + val.h5 for jets/muons, the photon file for klm)
#   FFJORD_EXTRA_ARGS  more train_parallel.py arguments, e.g. "--epochs 50"
#   FFJORD_VENV        virtual environment to activate (default <repo>/.venv when present,
#                      else `module load tensorflow`)
#   FFJORD_PORT_BASE   first TF gRPC port / Horovod rendezvous port (default 8888 / 29400)
#   FFJORD_MAX_RESUBMITS  automatic resubmissions after a time-limit stop (default 5)
#   FFJORD_SCRIPT      training script (default scripts/train_parallel.py)

FFJORD_REPO=${FFJORD_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
FFJORD_BACKEND=${FFJORD_BACKEND:-tf}
FFJORD_MODEL=${FFJORD_MODEL:-calorimeter}
FFJORD_OUT=${FFJORD_OUT:-$FFJORD_REPO/runs/perlmutter_${FFJORD_MODEL}_${FFJORD_BACKEND}}
FFJORD_MAX_RESUBMITS=${FFJORD_MAX_RESUBMITS:-5}
FFJORD_RESUBMIT_COUNT=${FFJORD_RESUBMIT_COUNT:-0}
FFJORD_SCRIPT=${FFJORD_SCRIPT:-$FFJORD_REPO/scripts/train_parallel.py}

ffjord_setup_env() {
    # Python environment, quiet TensorFlow, and the settings each engine wants on Perlmutter.
    local venv=${FFJORD_VENV:-$FFJORD_REPO/.venv}
    if [[ -x "$venv/bin/python" ]]; then
        # shellcheck disable=SC1091
        source "$venv/bin/activate"
    elif command -v module >/dev/null; then
        module load tensorflow
    fi
    FFJORD_PYTHON=${FFJORD_PYTHON:-$(command -v python)}
    export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
    export PYTHONUNBUFFERED=1
    export FFJORD_KIT_PORT_BASE=${FFJORD_PORT_BASE:-}
    [[ -n "$FFJORD_KIT_PORT_BASE" ]] || unset FFJORD_KIT_PORT_BASE
    # Horovod/NCCL across Perlmutter's Slingshot network (hsn0..3): let NCCL pick them.
    export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-hsn}
    # Horovod's Gloo control plane on the same network, where the node has it.
    if [[ -z "${HOROVOD_GLOO_IFACE:-}" && -e /sys/class/net/hsn0 ]]; then
        export HOROVOD_GLOO_IFACE=hsn0
    fi
    mkdir -p "$FFJORD_OUT/logs"
}

ffjord_has_checkpoint() {
    # train_parallel.py keeps its checkpoints in <out>/<run name>/checkpoint{,.prev}/.
    compgen -G "$FFJORD_OUT/*/checkpoint*/state.json" >/dev/null
}

ffjord_task_command() {
    # The command each srun task runs (one line per argument, for "mapfile").
    printf '%s\n' "${FFJORD_PYTHON:-python}" "$FFJORD_SCRIPT" --model_name "$FFJORD_MODEL" \
        --backend "$FFJORD_BACKEND" --out "$FFJORD_OUT"
    [[ -z "${FFJORD_DATA:-}" ]] || printf '%s\n' --data_folder "$FFJORD_DATA"
    ffjord_has_checkpoint && printf '%s\n' --load
    # shellcheck disable=SC2086
    [[ -z "${FFJORD_EXTRA_ARGS:-}" ]] || printf '%s\n' $FFJORD_EXTRA_ARGS
    return 0
}

ffjord_srun_flags() {
    # One task per GPU, block layout (both engines number ranks node by node), all GPUs of a
    # node visible to its tasks (the backends pin GPU = local rank), and a failed task ends
    # the step (the survivors also stop on their own: see ffjord_kit/distributed/watchdog.py).
    printf '%s\n' --kill-on-bad-exit=1 --distribution=block:block --cpu-bind=cores \
        --gpus-per-node="${SLURM_GPUS_ON_NODE:-4}"
}

ffjord_resubmit() {
    # Called when SLURM's --signal arrived: the run checkpointed on SIGTERM and stopped; queue
    # the same script again (it resumes with --load) unless the chain is long enough.
    local next=$((FFJORD_RESUBMIT_COUNT + 1))
    if (( next > FFJORD_MAX_RESUBMITS )); then
        echo "ffjord: time limit reached $next times; not resubmitting (FFJORD_MAX_RESUBMITS)"
        return 0
    fi
    echo "ffjord: resubmitting ($next/$FFJORD_MAX_RESUBMITS): resumes from $FFJORD_OUT"
    sbatch --export=ALL,FFJORD_RESUBMIT_COUNT=$next,FFJORD_BACKEND=$FFJORD_BACKEND,FFJORD_OUT=$FFJORD_OUT \
        "${FFJORD_SBATCH_FILE:-$FFJORD_REPO/slurm/perlmutter_16gpu.sbatch}"
}
