#!/usr/bin/env bash
# Issue 11 on one lent H100 (a session has 15 minutes of device time, start and transfers included), four runs at
# once for TRAIN_TIME seconds of wall clock each:
#   wide              the wide TD-VAE of experiments/tdvae_gpu.sh, resumed from its CPU checkpoint (RESUME, a copy
#                     of runs/tdvae_cpu/wide with config.yaml and checkpoints/last.ckpt; Lightning's max_time counts
#                     the RESUME_ELAPSED seconds it has already trained)
#   wide_b512         the same network from scratch at the reference's batch of 512 (xqding/TD-VAE), which a GPU
#                     steps through at about the cost of 128
#   wide_b512_lr1e3   that, at twice the learning rate
#   wider_b512        belief 256, two stochastic layers of 32, D blocks of 256, 800-wide decoder layers, batch 512
# The weights (and the resumed run's checkpoint) are packed under PACK for `vaekit rollout --evaluate` on a CPU.
#   RESUME=.devdata/wide RESUME_ELAPSED=9204 TRAIN_TIME=420 VAEKIT="python3 -m vaekit.cli" PACK=$OUT \
#     bash experiments/tdvae_h100.sh
set -u
VAEKIT=${VAEKIT:-vaekit}
OUT_DIR=${OUT_DIR:-runs/tdvae_h100}
TRAIN_TIME=${TRAIN_TIME:-390}
RESUME=${RESUME:-}
RESUME_ELAPSED=${RESUME_ELAPSED:-0}
PACK=${PACK:-}
export OMP_NUM_THREADS=2
hms() { printf '00:%02d:%02d:%02d' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }
WIDE="model.preprocess=[784] model.belief_size=128 model.latent_size=16 model.hidden=128 model.decoder_hidden=[400,400]"
WIDER="model.preprocess=[784] model.belief_size=256 model.latent_size=32 model.hidden=256 model.decoder_hidden=[800,800]"
B512="data.batch_size=512 train.epochs=5000 train.figures_every_n_epochs=25 trainer.max_time=$(hms "$TRAIN_TIME")"
declare -A VARIANT=(
  [wide]="$WIDE train.epochs=1000 train.threads=2 trainer.max_time=$(hms $((RESUME_ELAPSED + TRAIN_TIME)))"
  [wide_b512]="$WIDE $B512"
  [wide_b512_lr1e3]="$WIDE $B512 train.lr=1e-3"
  [wider_b512]="$WIDER $B512"
)
mkdir -p "$OUT_DIR"
if [[ -n $RESUME ]]; then rm -rf "$OUT_DIR/wide"; cp -r "$RESUME" "$OUT_DIR/wide"; fi
for name in "${!VARIANT[@]}"; do
  # shellcheck disable=SC2086
  $VAEKIT train configs/tdvae_moving_mnist.yaml ${VARIANT[$name]} --out "$OUT_DIR/$name" --resume auto \
    > "$OUT_DIR/$name.log" 2>&1 &
done
wait
for name in "${!VARIANT[@]}"; do
  echo "== $name: $(tail -1 "$OUT_DIR/$name/logs/metrics.csv" | cut -d, -f1,2)"; tail -3 "$OUT_DIR/$name.log"
  if [[ -n $PACK ]]; then
    tar -czf "$PACK/$name.tgz" -C "$OUT_DIR/$name" config.yaml model.safetensors logs/metrics.csv
  fi
done
if [[ -n $PACK && -f $OUT_DIR/wide/checkpoints/last.ckpt ]]; then  # 22 MB: in two parts under a 16 MiB limit
  split -b 12M -d "$OUT_DIR/wide/checkpoints/last.ckpt" "$PACK/wide_last.ckpt.part"
fi
