"""The README's first command end to end: scripts/quickstart.sh fine-tunes the bundled base model with LoRA
(2 ranks, expert_parallel=2, one preemption and resume) and prints eval loss and exact-match accuracy on
the held-out domain set before and after. The loss must drop by at least 30% and the accuracy rise."""
import os
import re
import subprocess
import sys

SOURCE = os.environ["L4_SOURCE_DIR"]
r = subprocess.run(["bash", os.path.join(SOURCE, "scripts/quickstart.sh")], cwd=SOURCE, capture_output=True,
                   text=True, timeout=1500)
print(r.stdout[-3000:])
loss = re.search(r"\| eval loss\s+\|\s+([0-9.]+) \|\s+([0-9.]+) \|", r.stdout)
acc = re.search(r"\| exact-match accuracy \(images incl\.\)\s+\|\s+([0-9.]+) \|\s+([0-9.]+) \|", r.stdout)
failures = []
if r.returncode != 0 or not loss or not acc:
    failures.append(f"quickstart failed (rc {r.returncode}):\n{r.stderr[-3000:]}")
else:
    before, after = float(loss.group(1)), float(loss.group(2))
    acc0, acc1 = float(acc.group(1)), float(acc.group(2))
    print(f"eval loss {before} -> {after} ({100 * (before - after) / before:.1f}% drop); exact match {acc0} -> {acc1}")
    if after > 0.7 * before:
        failures.append("eval loss dropped by less than 30%")
    if acc1 < acc0 + 0.05:
        failures.append("exact-match accuracy did not rise by 5 points")
    for path in ["runs/quickstart/adapter/adapter_config.json", "runs/quickstart/merged/model.safetensors",
                 "runs/quickstart/metrics.jsonl"]:
        if not os.path.exists(os.path.join(SOURCE, path)):
            failures.append(f"{path} missing")
for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failed" if failures else "quickstart checks passed")
sys.exit(1 if failures else 0)
