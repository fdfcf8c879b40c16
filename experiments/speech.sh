#!/usr/bin/env bash
# Issue 12: the speech style VAE on FSDD (real speech) and on the espeak-ng corpus (known style factors), then
# the measures (speaker / word transfer on the FSDD test split; F0 and rate correlation, single-dimension
# traversals on the synthetic corpus) into results/, and example WAVs for the docs.
#   nohup bash experiments/speech.sh > runs/speech.log 2>&1 &        # resumes each run where it stopped
set -u
VAEKIT=${VAEKIT:-vaekit}
PY=${PY:-python}
export OMP_NUM_THREADS=1
mkdir -p runs/speech results docs/speech
for set in fsdd synthetic; do
  echo "$(date -Is) training speech_vae_$set"
  $VAEKIT train "configs/speech_vae_$set.yaml" --out "runs/speech/speech_vae_$set" --resume auto \
    >> "runs/speech/speech_vae_$set.log" 2>&1
  $PY -m vaekit.views.speech_eval "runs/speech/speech_vae_$set" --out "results/speech_vae_$set.json"
done
data=${VAEKIT_DATA:-../shared/data}
# transfer: "seven" in the style of theo saying "two" and of jackson saying "four" (FSDD test recordings)
$VAEKIT speak runs/speech/speech_vae_fsdd --text seven --reference "$data/fsdd/recordings/2_theo_0.wav" \
  -o docs/speech/fsdd_seven_as_theo.wav
$VAEKIT speak runs/speech/speech_vae_fsdd --text seven --reference "$data/fsdd/recordings/4_jackson_1.wav" \
  -o docs/speech/fsdd_seven_as_jackson.wav
# control: the z dimensions that follow F0 and length most closely (speech_eval's "control" block)
for key in pitch_dimension rate_dimension; do
  dim=$($PY -c "import json; print(json.load(open('results/speech_vae_synthetic.json'))['control']['$key']['dim'])")
  $VAEKIT speak runs/speech/speech_vae_synthetic --text seven --traverse "$dim" --steps 5 \
    -o docs/speech/synthetic_seven.wav
done
