#!/usr/bin/env bash
# Every GPU figure benchmarks/README.md still lists as missing, in one run, each script's
# output saved to its own file. Sized for well under 30 minutes on one H100.
#
#   bash benchmarks/gpu_figures.sh [OUT_DIR]          # on a CUDA machine
#   DEVICE=cpu SMOKE=1 bash benchmarks/gpu_figures.sh  # every command on tiny sizes, on a CPU
#
# SMOKE=1 shrinks every size so the whole list runs in minutes anywhere: it checks the
# commands, not the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-benchmarks/gpu-figures}}
device=${DEVICE:-cuda}
mkdir -p "$out"

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

run() {
  local name=$1
  shift
  echo "== $name: $*" | tee "$out/$name.txt"
  local start=$SECONDS
  if ! "$@" >>"$out/$name.txt" 2>&1; then
    echo "   FAILED (exit code above; output in $out/$name.txt)" | tee -a "$out/$name.txt"
    tail -5 "$out/$name.txt"
    return 0  # one failure must not cost the other figures
  fi
  tail -n +2 "$out/$name.txt" |
    grep -v -i -E "warn|register_(new_)?resolver|hydra-ecosystem|^\s*$|OmegaConf" |
    tail -n 12
  echo "   ($((SECONDS - start)) s)"
}

{
  date -u
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  if [[ "$device" == cuda* ]]; then nvidia-smi --query-gpu=name,memory.total,clocks.max.sm \
    --format=csv; fi
} >"$out/device.txt" 2>&1
cat "$out/device.txt"

# 1. Engine vs hand loop (ratio target >= 0.95).
run engine_mlp_fp32 python benchmarks/engine_overhead.py --device "$device" "${mlp[@]}"
run engine_mlp_bf16 python benchmarks/engine_overhead.py --device "$device" "${mlp[@]}" \
  --precision bf16
run engine_cnn_fp32 python benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}"
run engine_cnn_fp32_cl python benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}" \
  --channels-last
run engine_cnn_bf16_cl python benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}" \
  --channels-last --precision bf16
if [[ "$device" == cuda* ]]; then
  run engine_cnn_fp16_cl python benchmarks/cnn_overhead.py --device "$device" "${cnn[@]}" \
    --channels-last --precision fp16
fi
run engine_cnn_bf16_cl_compile python benchmarks/cnn_overhead.py --device "$device" \
  "${cnn[@]}" --channels-last --precision bf16 --compile

# 2. Achieved FLOP/s against the matmul ceiling, compile off and on.
run flops python benchmarks/flops.py --device "$device" "${flops[@]}" \
  --precisions fp32,fp32_cl,bf16_cl
run flops_compile python benchmarks/flops.py --device "$device" "${flops[@]}" \
  --precisions fp32_cl,bf16_cl --compile

# 3. Loading vs the step it feeds.
run loading python benchmarks/loading.py --device "$device" "${loading[@]}"

# 5. ResNet-20, one epoch of 50,000 images and the 64k-iteration recipe.
run resnet20_auto python benchmarks/resnet20_epoch.py --device "$device" "${resnet[@]}"
run resnet20_fp32 python benchmarks/resnet20_epoch.py --device "$device" "${resnet[@]}" \
  --precision fp32
run resnet20_auto_compile python benchmarks/resnet20_epoch.py --device "$device" \
  "${resnet[@]}" --compile on

echo "all outputs in $out"
