#!/usr/bin/env bash
# Issue 10's Ladder VAE comparison (the lecture's Figure 3 at a budget this machine affords): the plain
# hierarchical VAE with batch norm and warm-up against the Ladder VAE, at 1, 3 and 5 stochastic layers
# (latents 64-32-16-8-4, hidden 512-256-128-64-32 as Sonderby et al.), plus the plain VAE without batch norm or
# warm-up and with batch norm only at 5 layers; each run the recipe's 45 minutes of one core; NLL at k = 5000.
#   nohup bash experiments/ladder.sh > runs/ladder.log 2>&1 &
set -u
VAEKIT=${VAEKIT:-vaekit}
export OMP_NUM_THREADS=1
mkdir -p runs/ladder
L=([1]="model.latent_dims=[64] model.hidden=[512]"
   [3]="model.latent_dims=[64,32,16] model.hidden=[512,256,128]"
   [5]="model.latent_dims=[64,32,16,8,4] model.hidden=[512,256,128,64,32]")
train() {  # name recipe overrides...
  local name=$1 recipe=$2; shift 2
  echo "$(date -Is) training $name"
  # shellcheck disable=SC2068
  $VAEKIT train "configs/$recipe.yaml" $@ --out "runs/ladder/$name" --resume auto >> "runs/ladder/$name.log" 2>&1
  [[ -f runs/ladder/$name/eval_k5000.json ]] || $VAEKIT evaluate "runs/ladder/$name" --quiet > /dev/null
}
for n in 1 3 5; do
  train "vae_bn_wu_$n" hierarchical_vae_mnist ${L[$n]}
  train "lvae_bn_wu_$n" ladder_vae_mnist ${L[$n]}
done
train vae_5 hierarchical_vae_mnist ${L[5]} model.batch_norm=false "model.kl_weight={start: 1.0, end: 1.0}"
train vae_bn_5 hierarchical_vae_mnist ${L[5]} "model.kl_weight={start: 1.0, end: 1.0}"
