#!/usr/bin/env bash
# Issue 9's grid: beta = 1, beta = 4 and Burgess et al.'s capacity control on dSprites, three seeds each, as
# background runs that resume where they stopped. Each run is one thread; LANES runs go at once.
#   nohup bash experiments/dsprites.sh 30000 2 > runs/dsprites.log 2>&1 &      # first pass: 30,000 steps each
#   nohup bash experiments/dsprites.sh 100000 2 > runs/dsprites.log 2>&1 &     # later: the same runs, extended
# A finished run resumed with the same STEPS stops at once, so the script can simply be started again.
set -u
STEPS=${1:-30000}
LANES=${2:-2}
VAEKIT=${VAEKIT:-vaekit}
runs=(beta1_s0 beta4_s0 capacity_s0 beta1_s1 beta4_s1 capacity_s1 beta1_s2 beta4_s2 capacity_s2)
mkdir -p runs/dsprites

overrides() {
  case $1 in
    beta1_*) echo "model.beta=1" ;;
    beta4_*) echo "model.beta=4" ;;
    # Burgess et al.'s learning rate: at disentanglement_lib's 1e-4 the capacity objective never left the
    # collapsed start (C = 0 pins q to the prior, the decoder learns to ignore z; 0 active units at 1,500 steps
    # of a fast ramp, 10 at 5e-4)
    # gamma 100 (1Konny/Beta-VAE's dSprites script; Burgess et al. print 1000): at 1000 two of three seeds never
    # left the collapsed start (0 active units for 30,000 steps; runs/dsprites/capacity_g1000_s*)
    capacity_*) echo "model.objective=capacity model.gamma=100 train.lr=5e-4" ;;
  esac
}

lane() {
  for ((i = $1; i < ${#runs[@]}; i += LANES)); do
    r=${runs[i]}
    echo "$(date -Is) lane $1: $r to $STEPS steps"
    # shellcheck disable=SC2046
    OMP_NUM_THREADS=1 $VAEKIT train configs/beta_vae_dsprites.yaml $(overrides "$r") "train.seed=${r##*_s}" \
      "trainer.max_steps=$STEPS" train.threads=1 --out "runs/dsprites/$r" --resume auto >> "runs/dsprites/$r.log" 2>&1
    echo "$(date -Is) lane $1: $r exited $?"
  done
}

for ((l = 0; l < LANES; l++)); do lane "$l" & done
wait
