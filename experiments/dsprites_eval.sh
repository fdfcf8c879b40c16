#!/usr/bin/env bash
# Final evaluation of issue 9's grid (experiments/dsprites.sh): for every run whose last checkpoint has reached
# STEPS, the five metrics (the two classifier metrics at a fifth of disentanglement_lib's samples, as the
# recipe's eval.metric_settings say) into RUN/eval_*.json, and its traversals; then the report.
#   bash experiments/dsprites_eval.sh 30000
set -u
STEPS=${1:-30000}
VAEKIT=${VAEKIT:-vaekit}
PY=${PY:-python}
for run in runs/dsprites/*_s[0-9]; do
  step=$($PY -c "import torch,sys; print(torch.load(sys.argv[1], weights_only=True)['global_step'])" \
    "$run/checkpoints/last.ckpt" 2>/dev/null || echo 0)
  if (( step < STEPS )); then echo "$run: step $step < $STEPS, skipped"; continue; fi
  if [[ -f $run/eval_step$step.json ]]; then echo "$run: evaluated at $step"; continue; fi
  echo "$(date -Is) $run: evaluating at step $step"
  # the last weights (model.safetensors), not the best ELBO: the metrics are reported at the final step
  OMP_NUM_THREADS=1 $VAEKIT evaluate "$run/model.safetensors" --quiet --nll-samples 100 --limit 2000 \
    --metrics beta_vae,factor_vae,mig,dci,sap \
    eval.metric_settings.beta_vae.num_train=2000 eval.metric_settings.beta_vae.num_eval=1000 \
    eval.metric_settings.factor_vae.num_train=2000 eval.metric_settings.factor_vae.num_eval=1000 \
    > "$run/eval_step$step.json.tmp" && mv "$run/eval_step$step.json.tmp" "$run/eval_step$step.json"
  OMP_NUM_THREADS=1 $VAEKIT traverse "$run/model.safetensors" --out "$run/traversals"
done
$PY benchmarks/dsprites_report.py
