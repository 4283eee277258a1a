#!/usr/bin/env bash
# The whole GPU benchmark and accuracy guard, ResNet-50 and the bundled architecture, in one go.
#
#   scripts/gpu_bench.sh OUTDIR [--device cuda|cuda:N|cpu] [--repeats N] [--targets N ...]
#                               [--sizes S ...] [--guard-frames N]
#
# Needs only python3 with CUDA PyTorch, onnxruntime(-gpu), onnx and OpenCV: no ROS, no venv
# (PYTHON=... picks another interpreter). Writes OUTDIR/environment.txt, OUTDIR/export.txt
# (ONNX export check), OUTDIR/results.md, results.csv, bench.png, OUTDIR/bench.log and
# OUTDIR/gpu_checks.md (siammask_ros.cli.gpu_checks: numerics, determinism, training step)
# and, on CUDA with pytest installed, OUTDIR/conformance.log (test_reference_conformance.py
# with the tracker on the GPU).
# Precisions: fp32, fp16 and bf16 (torch) on CUDA; fp32 only on the CPU (bf16 fails the guard there).
# The torch rows run with host crops and with device crops (one upload per frame).
# Exit status: non-zero when the export check, the accuracy guard or a GPU check fails.
# The test suite runs it with --device cpu and tiny counts so that it cannot rot.
set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: $0 OUTDIR [--device DEV] [--repeats N] [--targets N ...] [--sizes S ...] [--guard-frames N]" >&2
    exit 2
fi
OUT=$1
shift
DEVICE=cuda
REPEATS=10
TARGETS=(1 4 16)
SIZES=(255 831)
GUARD=60
while [[ $# -gt 0 ]]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --guard-frames) GUARD=$2; shift 2 ;;
        --targets|--sizes)
            option=$1; shift; values=()
            while [[ $# -gt 0 && $1 != --* ]]; do values+=("$1"); shift; done
            if [[ $option == --targets ]]; then TARGETS=("${values[@]}"); else SIZES=("${values[@]}"); fi ;;
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
done

if [[ $DEVICE == cuda* ]]; then PRECISIONS=(fp32 fp16 bf16); else PRECISIONS=(fp32); fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"

"$PY" - > "$OUT/environment.txt" <<'PYEOF'
import platform, cv2, torch, onnxruntime
print("python", platform.python_version(), platform.machine())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
print("onnxruntime", onnxruntime.__version__, "providers", onnxruntime.get_available_providers())
print("opencv", cv2.__version__)
PYEOF
cat "$OUT/environment.txt"

# Export check of the bundled model (every graph against torch on the same inputs).
"$PY" -m siammask_ros.cli.export --output-dir "$OUT/onnx" --search-sizes "${SIZES[@]}" | tee "$OUT/export.txt"

"$PY" -m siammask_ros.cli.bench_backends --device "$DEVICE" --arch siammask_r50 siammask_mnv2 \
    --sizes "${SIZES[@]}" --targets "${TARGETS[@]}" --repeats "$REPEATS" --guard-frames "$GUARD" \
    --precisions "${PRECISIONS[@]}" --crops host device \
    --output-dir "$OUT" 2>&1 | tee "$OUT/bench.log"
bench_status=${PIPESTATUS[0]}

# Device strings, device-vs-CPU numerics (TF32 off, and its deviation on), tracking on the
# device against the CPU, bit-for-bit repeat runs, mixed 255/lost groups, a training step
# under autocast saved and resumed.
"$PY" -m siammask_ros.cli.gpu_checks --device "$DEVICE" --frames "$GUARD" --sizes "${SIZES[@]}" \
    --output-dir "$OUT" 2>&1 | tee "$OUT/gpu_checks.log"
checks_status=${PIPESTATUS[0]}

# The reference-conformance test with the tracker on the GPU and the reference loop on the
# CPU, where pytest is installed (it is not needed for anything else here).
conformance_status=0
if [[ $DEVICE == cuda* ]]; then
    if "$PY" -c "import pytest" 2>/dev/null; then
        SIAMMASK_TEST_DEVICE=$DEVICE "$PY" -m pytest -q -p no:cacheprovider test/test_reference_conformance.py \
            2>&1 | tee "$OUT/conformance.log"
        conformance_status=${PIPESTATUS[0]}
    else
        echo "reference conformance on $DEVICE: not run (no pytest for $PY)" | tee "$OUT/conformance.log"
    fi
fi
for status in "$bench_status" "$checks_status" "$conformance_status"; do
    if [[ $status != 0 ]]; then exit "$status"; fi
done
