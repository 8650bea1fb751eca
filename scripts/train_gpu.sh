#!/usr/bin/env bash
# Train the two shipped tiny models side by side on one GPU for a fixed wall-clock budget.
# Usage: scripts/train_gpu.sh DATA_DIR OUT_DIR SECONDS [resume]
# Each run stops at its step budget or after SECONDS: timeout sends SIGTERM, on which a run finishes its step,
# writes last.pt and exits 143 (resume with the 4th argument).
set -u
data=$1; out=$2; secs=$3; resume=${4:-}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
common="train.data.root=$data train.num_workers=6 train.log_every=100 run.ckpt_every=250 run.tensorboard=false run.progress=false val.every=500 sched.warmup_steps=300"
r=""; [ -n "$resume" ] && r="--resume auto"
timeout -s TERM "$secs" python3 -m unblur train configs/deeprftv2-tiny-motion.yaml $common \
  train.data.crop_size=128 train.batch_size=16 train.steps=1500 run.dir=$out/dv2 $r >"$out/dv2.log" 2>&1 &
timeout -s TERM "$secs" python3 -m unblur train configs/nafnet-tiny-motion.yaml $common \
  train.data.crop_size=192 train.batch_size=16 train.steps=3000 run.dir=$out/naf $r >"$out/naf.log" 2>&1 &
wait
tail -n 5 "$out"/dv2.log "$out"/naf.log
