#!/usr/bin/env bash
# README command 1: set-up, then the main job on the bundled defaults: LoRA SFT of the bundled tiny
# multimodal base (data/models/tiny-mm-base) on the bundled domain set, on 2 ranks with the experts sharded over both,
# interrupted once and resumed, evaluated before and after, exported as a PEFT adapter and a merged model,
# and tried on held-out prompts, one of them with its picture. Outputs go to runs/quickstart/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
L4_BUILD_TARGETS=${L4_BUILD_TARGETS:-llama4} "$ROOT/scripts/setup.sh"  # the job needs only the binary
cd "$ROOT"
BIN=${L4_BUILD_DIR:-$ROOT/build}/bin/llama4
RECIPE=recipes/lora_sft_tiny.yaml
BASE=data/models/tiny-mm-base  # the recipe's model.init
OUT=runs/quickstart
rm -rf "$OUT"
RUN=("checkpoint.dir=$OUT/ckpt" "logging.run_dir=$OUT")
STEPS=$(grep -oE "\{steps: [0-9]+" "$RECIPE" | grep -oE "[0-9]+")
HALF=$((STEPS / 2))
export OMP_NUM_THREADS=1

echo "== 1/7 prepare the domain data (text and images)"
"$BIN" prepare --config "$RECIPE"

echo "== 2/7 evaluate the base model"
# `eval` prints the overall line ("step ...") and one line per task of the held-out set.
before_all=$("$BIN" eval --config "$RECIPE" "${RUN[@]}" parallel.expert_parallel=1 checkpoint.resume=none)
echo "$before_all"
before=$(echo "$before_all" | grep '^step')

echo "== 3/7 LoRA SFT on 2 ranks (expert_parallel=2), stopped at step $HALF as a preemption would"
launch/mpirun.sh -n 2 -t 1 -- train --config "$RECIPE" "${RUN[@]}" "train.stop_at_step=$HALF"

echo "== 4/7 resume to step $STEPS"
launch/mpirun.sh -n 2 -t 1 -- train --config "$RECIPE" "${RUN[@]}"

echo "== 5/7 evaluate the fine-tuned model"
after_all=$("$BIN" eval --config "$RECIPE" "${RUN[@]}" parallel.expert_parallel=1)
echo "$after_all"
after=$(echo "$after_all" | grep '^step')

echo "== 6/7 export the PEFT adapter and the merged model"
CKPT=$OUT/ckpt/$(cat "$OUT/ckpt/latest")
"$BIN" export --checkpoint "$CKPT" --output "$OUT/adapter" --peft --overwrite
# A full multimodal HF directory: LoRA merged into the text weights, the tower and the trained projector.
"$BIN" export --checkpoint "$CKPT" --output "$OUT/merged" --overwrite

echo "== 7/7 answer held-out questions"
PROMPTS=(
  "How many sides does a triangle have? Answer with one word or number."
  "What colour do you get by mixing red and blue? Answer with one word."
)
for prompt in "${PROMPTS[@]}"; do
  printf '  Q: %s\n  A (base):  %s\n  A (tuned): %s\n' "$prompt" \
    "$("$BIN" generate --model "$BASE" --prompt "$prompt" --max-tokens 8 2>/dev/null | tail -n1)" \
    "$("$BIN" generate --model "$OUT/merged" --prompt "$prompt" --max-tokens 8 2>/dev/null | tail -n1)"
done
# A held-out question about a picture (data/domain/eval.jsonl), asked of the base and of the exported
# multimodal directory.
IMAGE=data/domain/images/img_0391.png IMAGE_Q="What colour is the square?" IMAGE_WANT=orange
image_answer() {  # the log goes to $OUT/generate_image.log
  "$BIN" generate "$@" --prompt "$IMAGE_Q" --image "$IMAGE" --max-tokens 8 2>>"$OUT/generate_image.log" |
    tail -n1 | sed -E 's/^[[:space:]]+|[[:space:]]+$//g'
}
img0=$(image_answer --model "$BASE")
img1=$(image_answer --model "$OUT/merged")
printf '  Q: [%s] %s (expected: %s)\n  A (base):  %s\n  A (tuned): %s\n' "$IMAGE" "$IMAGE_Q" "$IMAGE_WANT" \
  "$img0" "$img1"

field() { echo "$1" | grep -oE "$2 [0-9.naN]+" | awk '{print $2}'; }
loss0=$(field "$before" eval_loss) loss1=$(field "$after" eval_loss)
acc0=$(field "$before" exact_match) acc1=$(field "$after" exact_match)
echo
echo "| metric (held-out domain set)        | base     | LoRA-tuned |"
echo "|-------------------------------------|----------|------------|"
printf "| eval loss                           | %8.4f | %10.4f |\n" "$loss0" "$loss1"
printf "| exact-match accuracy (images incl.) | %8.3f | %10.3f |\n" "$acc0" "$acc1"
printf "| image Q answer (expected: %-8s) | %8s | %10s |\n" "$IMAGE_WANT" "\"$img0\"" "\"$img1\""
awk -v a="$loss0" -v b="$loss1" 'BEGIN { printf "eval loss drop: %.1f%%\n", 100 * (a - b) / a }'
echo
echo "| task (held-out)      | documents | exact match base | tuned |"
echo "|----------------------|-----------|------------------|-------|"
paste -d' ' <(echo "$before_all" | grep '^  task') <(echo "$after_all" | grep '^  task' | awk '{print $6}') |
  awk '{ printf "| %-20s | %9s | %16.3f | %5.3f |\n", $2, $8, $6, $11 }'
echo "outputs: $OUT/metrics.jsonl, $OUT/tb/ (tensorboard), $OUT/ckpt/, $OUT/adapter/ (PEFT), $OUT/merged/ (HF)"
