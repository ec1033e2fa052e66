#!/usr/bin/env bash
# Every GPU figure benchmarks/README.md still lists as missing, in one run, all output in
# one file ($OUT_DIR/gpu_figures.txt). Each step fits one 10-minute call of a lent GPU
# machine; together they fit its 30 minutes.
#
#   bash benchmarks/gpu_figures.sh [OUT_DIR]                    # every step, on a CUDA machine
#   STEPS="engine flops" bash benchmarks/gpu_figures.sh OUT_DIR  # some steps
#   DEVICE=cpu SMOKE=1 bash benchmarks/gpu_figures.sh            # every command, tiny, on a CPU
#
# Steps: engine (engine vs hand loop), flops (FLOP/s vs the matmul ceiling), loading,
# resnet20 (one epoch of 50,000 images and the 64k-iteration recipe). SMOKE=1 shrinks every
# size so the whole list runs in minutes anywhere: it checks the commands, not the figures.
# PYTHON picks the interpreter (default python3).
#
# The scripts need PyTorch's stack (torch, torchvision, numpy, Pillow, PyYAML) and pydantic,
# not Kedro or MLflow, and import cnn_lab from src/: on a machine with only that stack,
#   PYTHONPATH=src bash benchmarks/gpu_figures.sh
# (benchmarks/README.md, "GPU: still missing", says how to carry pydantic to a lent GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-benchmarks/gpu-figures}}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}
steps=" ${STEPS:-engine flops loading resnet20} "
mkdir -p "$out"
log="$out/gpu_figures.txt"

if [[ -n "${SMOKE:-}" ]]; then
  mlp=(--samples 1024 --rounds 1 --epochs 1)
  cnn=(--samples 128 --rounds 1)
  flops=(--samples 128 --rounds 1 --epochs 1)
  loading=(--samples 1024 --rounds 1 --images 128)
  resnet=(--train 256 --val 128 --epochs 2)
else
  mlp=(--samples 65536 --rounds 3 --epochs 2)
  cnn=(--samples 8192 --rounds 3)
  flops=(--samples 16384 --rounds 2 --epochs 3)
  loading=(--samples 65536 --rounds 3 --images 4096 --workers 4)
  resnet=(--train 50000 --val 5000 --epochs 3)
fi

want() { [[ "$steps" == *" $1 "* ]]; }

run() {
  local name=$1
  shift
  local part
  part=$(mktemp)
  echo "== $name: $*"
  local start=$SECONDS status=0
  "$@" >"$part" 2>&1 || status=$?
  { echo "== $name: $* (exit $status, $((SECONDS - start)) s)"; cat "$part"; echo; } >>"$log"
  grep -v -i -E "warn|register_(new_)?resolver|hydra-ecosystem|^\s*$|OmegaConf" "$part" |
    tail -n 12
  rm -f "$part"
  if ((status)); then
    echo "   FAILED with exit code $status (whole output in $log)"
  else
    echo "   ($((SECONDS - start)) s)"
  fi
  return 0 # one failure must not cost the other figures
}

{
  echo "== device, $(date -u)"
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  if [[ "$device" == cuda* ]]; then
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || echo "no nvidia-smi"
  fi
} 2>&1 | tee -a "$log"

if want engine; then # 1. engine vs hand loop (ratio target >= 0.95)
  run engine_mlp_fp32 "$python" benchmarks/engine_overhead.py --device "$device" "${mlp[@]}"
  run engine_mlp_bf16 "$python" benchmarks/engine_overhead.py --device "$device" "${mlp[@]}" \
    --precision bf16
  run engine_cnn_fp32 "$python" benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}"
  run engine_cnn_fp32_cl "$python" benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}" \
    --channels-last
  run engine_cnn_bf16_cl "$python" benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}" \
    --channels-last --precision bf16
  if [[ "$device" == cuda* ]]; then
    run engine_cnn_fp16_cl "$python" benchmarks/cnn_overhead.py --device "$device" \
      "${cnn[@]}" --channels-last --precision fp16
  fi
  run engine_cnn_bf16_cl_compile "$python" benchmarks/cnn_overhead.py --device "$device" \
    "${cnn[@]}" --channels-last --precision bf16 --compile
fi

if want flops; then # 2. achieved FLOP/s against the matmul ceiling, compile off and on
  run flops "$python" benchmarks/flops.py --device "$device" "${flops[@]}" \
    --precisions fp32,fp32_cl,bf16_cl
  run flops_compile "$python" benchmarks/flops.py --device "$device" "${flops[@]}" \
    --precisions fp32_cl,bf16_cl --compile
fi

if want loading; then # 3. loading vs the step it feeds
  run loading "$python" benchmarks/loading.py --device "$device" "${loading[@]}"
fi

if want resnet20; then # 5. ResNet-20: one epoch of 50,000 images, the 64k-iteration recipe
  run resnet20_auto "$python" benchmarks/resnet20_epoch.py --device "$device" "${resnet[@]}"
  run resnet20_fp32 "$python" benchmarks/resnet20_epoch.py --device "$device" "${resnet[@]}" \
    --precision fp32
  run resnet20_auto_compile "$python" benchmarks/resnet20_epoch.py --device "$device" \
    "${resnet[@]}" --compile on
fi

echo "whole output in $log"
