#!/usr/bin/env bash
# Issue 10's Ladder VAE comparison (experiments/ladder.sh) on one GPU: the eight runs train at once, each for
# EPOCHS epochs with warm-up over the first tenth (the paper's 1:10 ratio), stopped at MAX_TIME whatever epoch
# they reached; then each is evaluated with L_5000 on the GPU. Written for a short GPU loan; BENCHMARKS.md
# section 11 is (on one H100, 8 runs sharing it; 97 to 100 epochs reached):
#   EPOCHS=100 MAX_TIME=00:00:09:00 OUT_DIR=runs/ladder_gpu bash experiments/ladder_gpu.sh
# Its longer run of the 5-layer pair, on this machine's two CPU cores (one run a core):
#   RUNS="vae_bn_wu_5 lvae_bn_wu_5" EPOCHS=400 MAX_TIME=00:01:25:00 EVAL_TIMEOUT=3600 OUT_DIR=runs/ladder_long \
#     bash experiments/ladder_gpu.sh
set -u
VAEKIT=${VAEKIT:-vaekit}
EPOCHS=${EPOCHS:-100}
MAX_TIME=${MAX_TIME:-00:00:09:00}
OUT_DIR=${OUT_DIR:-runs/ladder_gpu}
EVAL_TIMEOUT=${EVAL_TIMEOUT:-300}  # seconds; an evaluation cut short leaves no eval_k5000.json
EXTRA=${EXTRA:-}  # more overrides for every run (a smoke test: trainer.limit_train_batches=2)
EVAL_EXTRA=${EVAL_EXTRA:-}  # e.g. --limit 20 --nll-samples 10
RUNS=${RUNS:-}  # a subset of the run names below, e.g. "vae_bn_wu_5 lvae_bn_wu_5"; empty: all eight
export OMP_NUM_THREADS=1
mkdir -p "$OUT_DIR"
L=([1]="model.latent_dims=[64] model.hidden=[512]"
   [3]="model.latent_dims=[64,32,16] model.hidden=[512,256,128]"
   [5]="model.latent_dims=[64,32,16,8,4] model.hidden=[512,256,128,64,32]")
WARMUP="model.kl_weight={start: 0.0, end: 1.0, length: $(( (EPOCHS + 9) / 10 )), unit: epoch}"
NONE="model.kl_weight={start: 1.0, end: 1.0}"
run() {  # name recipe overrides...: train, then L_5000 (on the GPU where there is one)
  local name=$1 recipe=$2; shift 2
  [[ -z $RUNS || " $RUNS " == *" $name "* ]] || return 0
  # shellcheck disable=SC2086
  $VAEKIT train "configs/$recipe.yaml" "$@" train.epochs="$EPOCHS" trainer.max_time="$MAX_TIME" $EXTRA \
    --out "$OUT_DIR/$name" --resume auto > "$OUT_DIR/$name.log" 2>&1
  timeout "$EVAL_TIMEOUT" $VAEKIT evaluate "$OUT_DIR/$name" eval.batch_size=250 eval.chunk_size=500 $EVAL_EXTRA --quiet \
    >> "$OUT_DIR/$name.log" 2>&1
  echo "$(date -Is) $name: $(ls "$OUT_DIR/$name"/eval_k*.json 2>/dev/null || echo no evaluation)"
}
for n in 1 3 5; do
  # shellcheck disable=SC2086
  run "vae_bn_wu_$n" hierarchical_vae_mnist ${L[$n]} "$WARMUP" &
  # shellcheck disable=SC2086
  run "lvae_bn_wu_$n" ladder_vae_mnist ${L[$n]} "$WARMUP" &
done
# shellcheck disable=SC2086
run vae_5 hierarchical_vae_mnist ${L[5]} model.batch_norm=false "$NONE" &
# shellcheck disable=SC2086
run vae_bn_5 hierarchical_vae_mnist ${L[5]} "$NONE" &
wait
