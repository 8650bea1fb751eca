#!/usr/bin/env bash
# One GPU call of the real-blur fine-tune (configs/deeprftv2-tiny-realmotion.yaml), resumable.
# Prepare here:  python scripts/prepare_gpu_data.py runs/gpu-data   (carry runs/gpu-data and runs/<run dir>)
# Usage there:   scripts/train_gpu_realmix.sh runs/gpu-data OUT_DIR SECONDS [resume]
# The run stops at its step budget or after SECONDS (SIGTERM: it finishes its step, writes last.pt, exits 143);
# bf16 autocast, batch 32 of 256 px crops, data decoded once and kept in memory by the datasets' caches.
set -u
data=$1; out=$2; secs=$3; resume=${4:-}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
r=""; [ -n "$resume" ] && r="--resume auto"
timeout -s TERM "$secs" python3 -m unblur train configs/deeprftv2-tiny-realmotion.yaml \
  train.data.root="$data/photos" train.data.frames_root="$data/frames" val.kind=synthetic \
  train.data.crop_size=256 train.batch_size=32 train.num_workers=12 train.steps=3000 train.log_every=100 \
  run.ckpt_every=250 run.tensorboard=false run.progress=false val.every=500 run.dir="$out/realmix" $r \
  >"$out/realmix.log" 2>&1
tail -n 5 "$out/realmix.log"
