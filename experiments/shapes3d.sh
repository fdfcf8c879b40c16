#!/usr/bin/env bash
# Issue 10's pro-VLAE comparison on 3D shapes at equal budget (12,000 steps of batch 100 each): pro-VLAE, the
# VLAE it grows (all levels at once) and a beta-VAE; then the metrics (MIG, MIG-sup and the five) and
# traversals per run. Runs resume where they stopped.
#   nohup bash experiments/shapes3d.sh > runs/shapes3d.log 2>&1 &
set -u
VAEKIT=${VAEKIT:-vaekit}
SEED=${SEED:-0}
export OMP_NUM_THREADS=1
mkdir -p runs/shapes3d
for r in provlae_shapes3d vlae_shapes3d beta_vae_shapes3d; do
  out=runs/shapes3d/${r%_shapes3d}_s$SEED
  echo "$(date -Is) training $out"
  $VAEKIT train "configs/$r.yaml" "train.seed=$SEED" --out "$out" --resume auto >> "$out.log" 2>&1
done
for r in provlae vlae beta_vae; do
  out=runs/shapes3d/${r}_s$SEED
  [[ -f $out/eval_final.json ]] && continue
  $VAEKIT evaluate "$out/model.safetensors" --quiet > "$out/eval_final.json.tmp" && mv "$out/eval_final.json.tmp" "$out/eval_final.json"
  $VAEKIT traverse "$out/model.safetensors" --out "$out/traversals"
done
