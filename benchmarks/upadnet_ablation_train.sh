#!/usr/bin/env bash
# The runs behind benchmarks/upadnet_ablation.md: UPADNet-tiny (L0-initialised design) and its image-domain twin,
# each fitted the same way by scripts/upadnet_fit.py (the same start, gdunet-tiny.motion, the same 416 training
# pairs from CBSD432 with noise up to 0.05, seed and steps) on the pairs of all training photos and on those of
# the first 50 only; then the table with the other blind methods at the same noise levels. The shipped
# upadnet-tiny.motion is runs/upadnet-fit/amplitude-phase-all-prox.safetensors.
# The pairs are made once (runs/upadnet-fit/pairs.pt, about 17 minutes on 2 cores); each fit takes about a minute.
#   bash benchmarks/upadnet_ablation_train.sh            (RUNS=runs/upadnet-fit by default)
set -euo pipefail
RUNS=${RUNS:-runs/upadnet-fit}
PY=${PY:-python}
rows=()
for dec in amplitude-phase image; do
  for data in all 50; do
    name=$dec-$data
    photos=(); [ "$data" = 50 ] && photos=(--photos 50)
    [ -f "$RUNS/$name.safetensors" ] || "$PY" scripts/upadnet_fit.py --out "$RUNS" --decomposition $dec \
      --name "$name" "${photos[@]}"
    label="UPADNet (amplitude/phase)"; [ $dec = image ] && label="image-domain twin"
    rows+=(--model "$label, pairs of $data training photos" "upadnet-tiny:decomposition=$dec" "$RUNS/$name.safetensors")
  done
done
# The shipped weights: the amplitude/phase fit on all photos, then its last proximal net trained with its gate open
# (scripts/upadnet_fit.py --prox-steps). Not part of the decomposition comparison above (the twin has no such row).
name=amplitude-phase-all-prox
[ -f "$RUNS/$name.safetensors" ] || "$PY" scripts/upadnet_fit.py --out "$RUNS" --name "$name" --prox-steps 800
rows+=(--model "UPADNet (amplitude/phase) + last proximal net trained, pairs of all training photos (shipped)" \
  "upadnet-tiny" "$RUNS/$name.safetensors")
"$PY" benchmarks/upadnet_ablation.py "${rows[@]}" --model "gdunet-tiny.motion (closed LMMSE gates)" \
  gdunet-tiny.motion - --model deeprftv2-tiny.motion deeprftv2-tiny.motion - \
  --model nafnet-tiny.motion nafnet-tiny.motion - --classical blind-l0 --out benchmarks/upadnet_ablation.md
