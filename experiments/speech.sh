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
  $PY -m vaekit.speech_eval "runs/speech/speech_vae_$set" --out "results/speech_vae_$set.json"
done
data=${VAEKIT_DATA:-../shared/data}
$VAEKIT speak runs/speech/speech_vae_fsdd --text seven --reference "$data/fsdd/recordings/3_theo_7.wav" \
  -o docs/speech/seven_as_theo.wav
$VAEKIT speak runs/speech/speech_vae_synthetic --text seven --traverse 0 -o docs/speech/seven_traverse.wav
