#!/usr/bin/env bash
# The training runs behind benchmarks/upadnet_ablation.md: UPADNet-tiny and its image-domain twin, each trained
# the same way (configs/upadnet-tiny-motion.yaml: the same start from gdunet-tiny.motion, seed, steps and noise up
# to 0.05) on all training photos of CBSD432 (416 after the 16 held out) and on the first 50 of them only.
# Resumable: a finished run is skipped, an interrupted one continues from its last.pt. Then scores all four.
#   bash benchmarks/upadnet_ablation_train.sh            (STEPS=400 RUNS=runs/upadnet-ablation by default)
set -euo pipefail
STEPS=${STEPS:-400}
RUNS=${RUNS:-runs/upadnet-ablation}
UNBLUR=${UNBLUR:-unblur}
rows=()
for dec in amplitude-phase image; do
  for data in all 50; do
    dir=$RUNS/$dec-$data
    limit=(); [ "$data" = 50 ] && limit=(train.data.max_images=50)
    if [ ! -f "$dir/export.safetensors" ]; then
      resume=(); [ -f "$dir/last.pt" ] && resume=(--resume "$dir/last.pt")
      "$UNBLUR" train configs/upadnet-tiny-motion.yaml "${resume[@]}" model.args.decomposition=$dec \
        train.steps=$STEPS val.every=$STEPS run.keep_every=0 run.dir=$dir "${limit[@]}"
      "$UNBLUR" export "$dir/last.pt" "$dir/export.safetensors"
    fi
    label="UPADNet (amplitude/phase)"; [ $dec = image ] && label="image-domain twin"
    rows+=(--model "$label, $data training photos" "upadnet-tiny:decomposition=$dec" "$dir/export.safetensors")
  done
done
python benchmarks/upadnet_ablation.py "${rows[@]}" --out benchmarks/upadnet_ablation.md
