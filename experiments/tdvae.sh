#!/usr/bin/env bash
# Issue 11: TD-VAE and its LSTM baseline on the noisy oscillator and on moving MNIST, then rollouts, figures, GIFs
# and prediction errors (per frame ahead, per jump; digit identity on moving MNIST) into results/.
#   nohup bash experiments/tdvae.sh > runs/tdvae.log 2>&1 &        # resumes each run where it stopped
set -u
VAEKIT=${VAEKIT:-vaekit}
export OMP_NUM_THREADS=1
mkdir -p runs/tdvae results docs
for r in tdvae_oscillator lstm_oscillator tdvae_moving_mnist lstm_moving_mnist; do
  echo "$(date -Is) training $r"
  $VAEKIT train "configs/$r.yaml" --out "runs/tdvae/$r" --resume auto >> "runs/tdvae/$r.log" 2>&1
done
for set in oscillator moving_mnist; do
  extra=(); [[ $set == moving_mnist ]] && extra=(--identity)
  $VAEKIT rollout "runs/tdvae/tdvae_$set" --context 10 --horizon 10 --evaluate 1000 --samples 8 "${extra[@]}" \
    --baseline "runs/tdvae/lstm_$set" --out "docs/tdvae_${set}_rollout.png" > "runs/tdvae/predictions_$set.log"
  for jump in 2 5; do
    [[ $set == moving_mnist && $jump == 5 ]] && continue
    $VAEKIT rollout "runs/tdvae/tdvae_$set" --context 10 --horizon 10 --jump $jump \
      --out "docs/tdvae_${set}_rollout_jump$jump.png" >> "runs/tdvae/predictions_$set.log"
  done
  cp runs/tdvae/tdvae_$set/predictions_c10_h10_n1000.json "results/tdvae_$set.json"
done
