#!/usr/bin/env python3
"""Side-by-side benchmark: `llama4` against the Python references (HF transformers eager training, HF + PEFT,
tiktoken, HF tokenizers) in one run, same threads, same config, same data and batch. Writes
bench/results.md and bench/results.json and prints the markdown table. Called by scripts/bench.sh.
"""
import argparse
import copy
import datetime
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))
import tokenizer_bench  # noqa: E402


# Performance targets: (results key, comparison, threshold, what the value is).
TARGETS = [
    ("train_speedup_dense", ">=", 1.3, "dense fp32 training tokens/s, ours / HF eager"),
    ("train_speedup_dense_vs_compile", ">=", 1.0, "dense fp32 training tokens/s, ours / HF + torch.compile"),
    ("train_speedup_moe_vs_sparse_torch", ">=", 1.3, "MoE fp32 training tokens/s, ours / sparse PyTorch"),
    ("train_speedup_moe", ">=", 3.5, "MoE fp32 training tokens/s, ours / HF eager"),
    ("mfu_dense", ">=", 0.50, "dense fp32 MFU against the measured fp32 GEMM peak"),
    ("mfu_dense_bf16", ">=", 0.35, "dense bf16 MFU against the measured bf16 GEMM peak"),
    ("bf16_step_vs_fp32", "<=", 0.6, "our dense step time, bf16 / fp32 (applies where bf16 peak >= 2x fp32 peak)"),
    ("bf16_rss_vs_fp32", "<=", 1.0, "our dense peak RSS, bf16 / fp32"),
    ("lora_speedup_moe", ">=", 3.0, "LoRA MoE fp32 tokens/s, ours / HF + PEFT"),
    ("lora_peak_rss_ratio", "<=", 0.7, "LoRA MoE fp32 peak RSS, ours / HF + PEFT"),
    ("tokenizer_vs_tiktoken", ">=", 1.0, "tokenizer MB/s on one thread, ours / tiktoken"),
    ("ep2_vs_1rank", ">=", 0.85, "tokens/s, 2 ranks EP=2 / 1 rank (same 2 cores)"),
]


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.join(args.build, "bin")
        self.work = os.path.join(args.build, "bench")
        self.threads = args.threads
        self.rows = []      # markdown rows: (section, what, ours, reference, ratio, note)
        self.results = {}   # the JSON document
        self.notes = []     # sentences for results.md (e.g. why a peer ran in a fallback mode)
        os.makedirs(self.work, exist_ok=True)

    # ---- processes -------------------------------------------------------------------------------------
    def run(self, cmd, threads=None, log=None):
        """Runs cmd, returns (stdout, peak RSS of the process tree's largest process in MB, wall seconds)."""
        env = dict(os.environ, OMP_NUM_THREADS=str(threads or self.threads), MKL_NUM_THREADS=str(threads or self.threads),
                   TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
                   PYTHONWARNINGS="ignore")
        log_path = os.path.join(self.work, (log or "run") + ".log")
        start = time.perf_counter()
        with open(log_path, "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT, text=True)
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            tail = open(log_path).read()[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} exited with {code}; log {log_path}:\n{tail}")
        return out, usage.ru_maxrss / 1024.0, wall

    def llama4(self, *argv, **kw):
        return self.run([os.path.join(self.bin, "llama4"), *argv], **kw)

    def mpirun(self, np, argv, threads, log):
        cmd = ["mpirun", "-np", str(np), "--oversubscribe", "--bind-to", "none",
               "-x", f"OMP_NUM_THREADS={threads}"]
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        return self.run(cmd + argv, threads=threads, log=log)

    # ---- inputs ----------------------------------------------------------------------------------------
    def arch(self, name, **changes):
        """An architecture file derived from configs/small.yaml."""
        with open(os.path.join(ROOT, "configs", "small.yaml")) as f:
            arch = yaml.safe_load(f)
        arch["text_config"].update(changes)
        path = os.path.join(self.work, f"arch_{name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(arch, f, sort_keys=False)
        return path

    def recipe(self, name, arch_path, seq_len, global_batch, micro_batch, steps, precision="fp32", init=None,
               lora=False, ep=1, checkpoint_at_end=False):
        run_dir = os.path.join(self.work, "runs", name)
        shutil.rmtree(run_dir, ignore_errors=True)
        recipe = {
            "model": {"config": arch_path},
            "tokenizer": {"path": os.path.join(ROOT, "data", "tokenizer")},
            "data": {"sources": sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), "format": "text", "train": self.data_dir, "eval": "",
                     "eval_fraction": 0.0, "seq_len": seq_len, "pack": True},
            "parallel": {"expert_parallel": ep},
            "optimizer": {"lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"warmup_steps": 0, "decay": "constant"},
            "train": {"steps": steps, "global_batch": global_batch, "micro_batch": micro_batch,
                      "eval_every": 0, "precision": precision, "grad_clip": 1.0},
            "checkpoint": {"dir": os.path.join(run_dir, "ckpt"), "every": steps if checkpoint_at_end else 0,
                           "keep_last": 1, "resume": "none"},
            "logging": {"run_dir": run_dir, "every": 1, "peak_tflops": self.peak(precision)},
        }
        if init:
            recipe["model"]["init"] = init
        if lora:
            recipe["lora"] = {"rank": 16, "alpha": 32.0, "dropout": 0.0,
                              "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert", "experts"]}
        path = os.path.join(self.work, f"recipe_{name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(recipe, f, sort_keys=False)
        return path, run_dir

    def prepare_data(self):
        self.data_dir = os.path.join(self.work, "data", "corpus")
        if os.path.exists(os.path.join(self.data_dir, "meta.json")):
            return
        path, _ = self.recipe("prepare", os.path.join(ROOT, "configs", "small.yaml"), 512, 4, 2, 1)
        self.llama4("prepare", "--config", path, log="prepare")

    def init_model(self, name, arch_path):
        """Weights both sides start from: one step of ours, exported to an HF directory."""
        out = os.path.join(self.work, "models", name)
        if os.path.exists(os.path.join(out, "config.json")):
            return out
        path, run_dir = self.recipe(f"init_{name}", arch_path, 256, 1, 1, 1, checkpoint_at_end=True)
        self.llama4("train", "--config", path, log=f"init_{name}")
        shutil.rmtree(out, ignore_errors=True)
        self.llama4("export", "--checkpoint", self.last_checkpoint(run_dir), "--output", out, log=f"export_{name}")
        return out

    @staticmethod
    def last_checkpoint(run_dir):
        ckpt = os.path.join(run_dir, "ckpt")
        steps = sorted(d for d in os.listdir(ckpt) if d.startswith("step_") and not d.endswith(".tmp"))
        return os.path.join(ckpt, steps[-1])

    # ---- measurements ----------------------------------------------------------------------------------
    def peak(self, precision):
        return self.results.get("gemm_peak_tflops", {}).get("bf16" if precision == "bf16" else "fp32", 0.0)

    def measure_gemm(self):
        seconds = "1" if self.args.quick else "3"
        peaks = {}
        for key, dtype in (("fp32", "float32"), ("bf16", "bfloat16")):
            out, _, _ = self.run([os.path.join(self.bin, "bench_gemm"), dtype, seconds, "1024,2048"], log=f"gemm_{key}")
            peaks[key] = json.loads(out)["tflops"]
        self.results["gemm_peak_tflops"] = peaks
        for key, value in peaks.items():
            self.rows.append(("machine", f"GEMM peak {key} ({self.threads} threads)", f"{value:.3f} TFLOP/s", "", "", "LibTorch matmul"))

    def ours_train(self, name, arch_path, init, shape, precision="fp32", lora=False, ep=1, ranks=1, threads=None,
                   checkpoint_at_end=False):
        seq_len, global_batch, micro_batch = shape
        steps = self.args.warmup + self.args.steps
        path, run_dir = self.recipe(name, arch_path, seq_len, global_batch, micro_batch, steps, precision, init,
                                    lora, ep, checkpoint_at_end)
        argv = [os.path.join(self.bin, "llama4"), "train", "--config", path]
        if ranks > 1:
            _, rss, _ = self.mpirun(ranks, argv, threads or 1, name)
        else:
            _, rss, _ = self.run(argv, threads=threads, log=name)
        records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
        records = [r for r in records if "step_time_s" in r]
        measured = records[self.args.warmup:]
        step_time = statistics.median(r["step_time_s"] for r in measured)
        return {"step_time_s": step_time, "tokens_per_s": seq_len * global_batch / step_time,
                "peak_rss_mb": rss, "loss_first": records[0]["loss"], "loss_last": records[-1]["loss"],
                "mfu": statistics.median(r["mfu"] for r in measured), "run_dir": run_dir}

    def torch_train(self, name, script, model_dir, shape, precision="fp32", adapter=None, extra=()):
        """One Python reference run (scripts/bench/<script>): its median step time, tokens/s and peak RSS."""
        seq_len, global_batch, micro_batch = shape
        steps = self.args.warmup + self.args.steps
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "bench", script), "--model", model_dir,
               "--data", self.data_dir, "--seq-len", str(seq_len), "--global-batch", str(global_batch),
               "--micro-batch", str(micro_batch), "--steps", str(steps), "--precision", precision,
               "--lr", "1e-3", "--threads", str(self.threads), *extra]
        if adapter:
            cmd += ["--adapter", adapter]
        out, rss, _ = self.run(cmd, log=name)
        result = json.loads(out.strip().splitlines()[-1])
        step_time = statistics.median(result["step_time_s"][self.args.warmup:])
        return {"step_time_s": step_time, "tokens_per_s": seq_len * global_batch / step_time, "peak_rss_mb": rss,
                "loss_first": result["loss"][0], "loss_last": result["loss"][-1],
                **{k: result[k] for k in ("first_step_s", "sparse_moe_layers", "experts_kernel") if k in result}}

    def hf_train(self, name, model_dir, shape, precision="fp32", adapter=None):
        """HF transformers' eager training loop (HF + PEFT with an adapter)."""
        return self.torch_train(name, "hf_train.py", model_dir, shape, precision, adapter)

    def hf_compiled_train(self, name, model_dir, shape, precision="fp32"):
        """HF under torch.compile with inductor (C++/OpenMP kernels built by the host compiler). The first step
        compiles forward and backward: it is a warm-up step, and compile_s = its time less the median step.
        Where inductor cannot run, the reason is kept and the run repeats with aot_eager (graphs captured,
        eager kernels), labelled as such."""
        try:
            result = self.torch_train(name, "hf_train.py", model_dir, shape, precision, extra=["--compile", "inductor"])
            result["backend"] = "inductor"
        except RuntimeError as error:
            lines = [line.strip() for line in str(error).splitlines() if "Error" in line or "error:" in line]
            reason = lines[-1] if lines else str(error).splitlines()[0]
            self.notes.append(f"{name}: torch.compile with inductor failed here ({reason}); that row is "
                              f"torch.compile with backend aot_eager instead (graph capture, eager kernels).")
            result = self.torch_train(f"{name}_aot_eager", "hf_train.py", model_dir, shape, precision,
                                      extra=["--compile", "aot_eager"])
            result["backend"] = "aot_eager (inductor failed)"
            result["inductor_error"] = reason
        result["compile_s"] = max(0.0, result["first_step_s"] - result["step_time_s"])
        return result

    def sparse_torch_train(self, name, model_dir, shape, precision="fp32"):
        """The sparse PyTorch reference: HF's model with tokens routed to their chosen experts only."""
        return self.torch_train(name, "sparse_torch_train.py", model_dir, shape, precision)

    def compare_training(self, label, key, ours, ref, ref_name):
        speedup = ours["tokens_per_s"] / ref["tokens_per_s"]
        rss_ratio = ours["peak_rss_mb"] / ref["peak_rss_mb"]
        self.rows.append((label, "tokens/s", f"{ours['tokens_per_s']:.0f}", f"{ref['tokens_per_s']:.0f}",
                          f"{speedup:.2f}x", ref_name))
        self.rows.append((label, "peak RSS", f"{ours['peak_rss_mb']:.0f} MB", f"{ref['peak_rss_mb']:.0f} MB",
                          f"{rss_ratio:.2f}x", f"loss step 1: {ours['loss_first']:.3f} vs {ref['loss_first']:.3f}"))
        self.results[key] = {"ours": strip(ours), "reference": ref, "speedup": speedup, "peak_rss_ratio": rss_ratio}
        return speedup, rss_ratio

    def compare_peer(self, label, key, peer_key, ours, peer, peer_name, note=""):
        """A further reference of the same run (results[key]["peers"][peer_key]): tokens/s and peak RSS rows."""
        speedup = ours["tokens_per_s"] / peer["tokens_per_s"]
        rss_ratio = ours["peak_rss_mb"] / peer["peak_rss_mb"]
        self.rows.append((label, f"tokens/s vs {peer_name}", f"{ours['tokens_per_s']:.0f}",
                          f"{peer['tokens_per_s']:.0f}", f"{speedup:.2f}x", note))
        self.rows.append((label, f"peak RSS vs {peer_name}", f"{ours['peak_rss_mb']:.0f} MB",
                          f"{peer['peak_rss_mb']:.0f} MB", f"{rss_ratio:.2f}x",
                          f"loss step 1: {ours['loss_first']:.3f} vs {peer['loss_first']:.3f}"))
        self.results[key].setdefault("peers", {})[peer_key] = {"reference": peer, "speedup": speedup,
                                                               "peak_rss_ratio": rss_ratio}
        return speedup

    def compiled_peer(self, label, key, name, model_dir, shape, precision, ours):
        compiled = self.hf_compiled_train(name, model_dir, shape, precision)
        note = (f"compile + first step {compiled['first_step_s']:.0f} s, ~{compiled['compile_s']:.0f} s of it "
                f"compiling (warm-up, not in step time)")
        return self.compare_peer(label, key, "hf_compile", ours, compiled,
                                 f"HF + torch.compile ({compiled['backend']})", note)

    def training(self):
        a = self.args
        shape = (a.seq_len, a.global_batch, a.micro_batch)
        moe_arch = os.path.join(ROOT, "configs", "small.yaml")
        dense_arch = self.arch("dense", interleave_moe_layer_step=1000)  # no MoE layer: every MLP dense
        moe_init = self.init_model("moe", moe_arch)
        dense_init = self.init_model("dense", dense_arch)
        precisions = ["fp32"] if a.quick else ["fp32", "bf16"]
        dense = {}
        for precision in precisions:
            label, key = f"MoE train {precision}", f"train_moe_{precision}"
            ours = self.ours_train(f"ours_moe_{precision}", moe_arch, moe_init, shape, precision)
            ref = self.hf_train(f"hf_moe_{precision}", moe_init, shape, precision)
            speedup, _ = self.compare_training(label, key, ours, ref, "HF eager")
            vs_compile = self.compiled_peer(label, key, f"hf_compile_moe_{precision}", moe_init, shape, precision,
                                            ours)
            sparse = self.sparse_torch_train(f"sparse_torch_moe_{precision}", moe_init, shape, precision)
            vs_sparse = self.compare_peer(label, key, "sparse_torch", ours, sparse, "sparse PyTorch",
                                          f"HF + MoE routed to chosen experts only ({sparse['experts_kernel']})")
            if precision == "fp32":
                self.results["train_speedup_moe"] = speedup
                self.results["train_speedup_moe_vs_compile"] = vs_compile
                self.results["train_speedup_moe_vs_sparse_torch"] = vs_sparse

            label, key = f"dense train {precision}", f"train_dense_{precision}"
            ours = self.ours_train(f"ours_dense_{precision}", dense_arch, dense_init, shape, precision)
            ref = self.hf_train(f"hf_dense_{precision}", dense_init, shape, precision)
            speedup, _ = self.compare_training(label, key, ours, ref, "HF eager")
            vs_compile = self.compiled_peer(label, key, f"hf_compile_dense_{precision}", dense_init, shape,
                                            precision, ours)
            # Without MoE layers the sparse reference is HF's eager model unchanged: the HF eager run stands for it.
            vs_sparse = self.compare_peer(label, key, "sparse_torch", ours, dict(ref, same_run_as="HF eager"),
                                          "sparse PyTorch",
                                          "no MoE layer: the same code as HF eager, not run again")
            mfu_ref = ours["mfu"] * ref["tokens_per_s"] / ours["tokens_per_s"]
            self.rows.append((label, f"MFU vs {precision} GEMM peak", f"{100 * ours['mfu']:.1f}%",
                              f"{100 * mfu_ref:.1f}%", "", "model FLOPs / (time x measured peak)"))
            dense[precision] = ours
            if precision == "fp32":
                self.results["train_speedup_dense"] = speedup
                self.results["train_speedup_dense_vs_compile"] = vs_compile
                self.results["train_speedup_dense_vs_sparse_torch"] = vs_sparse
                self.results["mfu_dense"] = ours["mfu"]
                self.results["mfu_dense_reference"] = mfu_ref
            else:
                self.results[f"mfu_dense_{precision}"] = ours["mfu"]
        if "bf16" in dense:  # ours in bf16 against ours in fp32, dense model
            self.results["bf16_step_vs_fp32"] = dense["bf16"]["step_time_s"] / dense["fp32"]["step_time_s"]
            self.results["bf16_rss_vs_fp32"] = dense["bf16"]["peak_rss_mb"] / dense["fp32"]["peak_rss_mb"]
            self.rows.append(("dense train bf16", "ours bf16 / ours fp32: step time, peak RSS",
                              f"{self.results['bf16_step_vs_fp32']:.2f}x, {self.results['bf16_rss_vs_fp32']:.2f}x",
                              "", "", "lower is better"))
        for precision in precisions:
            ours = self.ours_train(f"ours_lora_{precision}", moe_arch, moe_init, shape, precision, lora=True,
                                   checkpoint_at_end=True)
            adapter = os.path.join(self.work, "models", f"adapter_{precision}")
            shutil.rmtree(adapter, ignore_errors=True)
            self.llama4("export", "--checkpoint", self.last_checkpoint(ours["run_dir"]), "--output", adapter, "--peft",
                        log=f"export_adapter_{precision}")
            ref = self.hf_train(f"hf_lora_{precision}", moe_init, shape, precision, adapter=adapter)
            speedup, rss = self.compare_training(f"LoRA MoE {precision}", f"lora_moe_{precision}", ours, ref, "HF + PEFT")
            if precision == "fp32":
                self.results["lora_speedup_moe"] = speedup
                self.results["lora_peak_rss_ratio"] = rss

    def tokenizer(self):
        res = tokenizer_bench.measure(os.path.join(self.bin, "llama4"), os.path.join(ROOT, "data", "tokenizer"),
                                      quick=self.args.quick)
        ours = res["llama4 (tokenizer.model, net of start-up+load)"]
        for name, mbps in res.items():
            self.rows.append(("tokenizer (1 thread)", name, f"{mbps:.1f} MB/s", "", "", "CPU time"))
        self.results["tokenizer_mb_s"] = res
        self.results["tokenizer_vs_tiktoken"] = ours / res["tiktoken encode_ordinary"]
        self.results["tokenizer_vs_hf"] = ours / res["HF tokenizers encode"]
        self.rows.append(("tokenizer (1 thread)", "ours / tiktoken", "", "", f"{self.results['tokenizer_vs_tiktoken']:.2f}x", ""))
        self.rows.append(("tokenizer (1 thread)", "ours / HF tokenizers", "", "", f"{self.results['tokenizer_vs_hf']:.2f}x", ""))

    def loader(self):
        path, _ = self.recipe("loader", os.path.join(ROOT, "configs", "small.yaml"), self.args.seq_len, 16, 4, 1)
        out, _, _ = self.run([os.path.join(self.bin, "bench_loader"), path, "100" if self.args.quick else "400"],
                             threads=1, log="loader")
        res = json.loads(out)
        self.results["loader_tokens_per_s"] = res["tokens_per_s"]
        self.rows.append(("loader", "tokens/s (packed rows, 1 rank)", f"{res['tokens_per_s'] / 1e6:.2f} M", "", "", ""))

    def expert_parallel(self):
        a = self.args
        shape = (a.seq_len, a.global_batch, a.micro_batch)
        moe_arch = os.path.join(ROOT, "configs", "small.yaml")
        init = self.init_model("moe", moe_arch)
        one = self.ours_train("ours_moe_1rank", moe_arch, init, shape, threads=2)
        two = self.ours_train("ours_moe_ep2", moe_arch, init, shape, ep=2, ranks=2, threads=1)
        ratio = two["tokens_per_s"] / one["tokens_per_s"]
        self.results["ep2_vs_1rank"] = ratio
        self.results["ep"] = {"one_rank_2_threads": strip(one), "two_ranks_ep2": strip(two)}
        self.rows.append(("expert parallel", "tokens/s: 2 ranks EP=2 (1 thread each) vs 1 rank (2 threads)",
                          f"{two['tokens_per_s']:.0f}", f"{one['tokens_per_s']:.0f}", f"{ratio:.2f}x", "ours vs ours"))
        out, _, _ = self.mpirun(2, [os.path.join(self.bin, "bench_ep_moe_layer"), moe_arch,
                                    str(a.seq_len * a.micro_batch), "5" if a.quick else "10"], 1, "ep_moe_layer")
        res = json.loads(out.strip().splitlines()[-1])
        self.results["all_to_all_share"] = res
        share = res["all_to_all_share"]
        self.rows.append(("expert parallel", "all-to-all share of MoE layer time (2 ranks)",
                          f"{100 * share:.1f}%", "", "", "fwd+bwd"))

    def scaling(self):
        a = self.args
        shape = (512, 4, 2)
        rows = []
        for experts in (4, 16, 64):
            arch = self.arch(f"experts{experts}", num_local_experts=experts)
            init = self.init_model(f"experts{experts}", arch)
            ours = self.ours_train(f"ours_experts{experts}", arch, init, shape)
            ref = self.hf_train(f"hf_experts{experts}", init, shape)
            rows.append({"experts": experts, "ours": strip(ours), "reference": ref})
            self.rows.append(("scaling: experts (top-1)", f"{experts} experts: step time / peak RSS",
                              f"{ours['step_time_s']:.2f} s / {ours['peak_rss_mb']:.0f} MB",
                              f"{ref['step_time_s']:.2f} s / {ref['peak_rss_mb']:.0f} MB",
                              f"{ref['step_time_s'] / ours['step_time_s']:.2f}x faster", "HF eager"))
        self.results["scaling_experts"] = rows
        rows = []
        moe_arch = os.path.join(ROOT, "configs", "small.yaml")
        init = self.init_model("moe", moe_arch)
        for seq_len in (512, 2048, 8192):
            ours = self.ours_train(f"ours_seq{seq_len}", moe_arch, init, (seq_len, 1, 1))
            entry = {"seq_len": seq_len, "ours": strip(ours)}
            ref_cell = "not run (dense T x T attention)"
            if seq_len <= 2048:
                ref = self.hf_train(f"hf_seq{seq_len}", init, (seq_len, 1, 1))
                entry["reference"] = ref
                ref_cell = f"{ref['step_time_s']:.2f} s / {ref['peak_rss_mb']:.0f} MB"
            rows.append(entry)
            self.rows.append(("scaling: sequence (chunk 512)", f"seq {seq_len}, 1 row: step time / peak RSS",
                              f"{ours['step_time_s']:.2f} s / {ours['peak_rss_mb']:.0f} MB", ref_cell, "", ""))
        self.results["scaling_seq_len"] = rows

    # ---- report ----------------------------------------------------------------------------------------
    def targets(self):
        """results["targets"]: each target's threshold, measured value (null where this run did not measure
        it) and whether it is met (null where not measured or not applicable)."""
        targets = {}
        peaks = self.results.get("gemm_peak_tflops", {})
        for key, comparison, threshold, what in TARGETS:
            value = self.results.get(key)
            entry = {"comparison": comparison, "threshold": threshold, "measured": value, "met": None, "what": what}
            if key == "bf16_step_vs_fp32" and peaks and peaks.get("bf16", 0.0) < 2 * peaks.get("fp32", 0.0):
                entry["applies"] = False
                entry["note"] = (f"bf16 GEMM peak {peaks['bf16']:.3f} < 2x fp32 peak {peaks['fp32']:.3f} TFLOP/s")
            elif value is None:
                entry["note"] = "not measured in this run"
            else:
                entry["met"] = value >= threshold if comparison == ">=" else value <= threshold
            targets[key] = entry
        self.results["targets"] = targets
        lines = ["| target | what | threshold | measured | met |", "|---|---|---|---|---|"]
        for key, entry in targets.items():
            measured = "-" if entry["measured"] is None else f"{entry['measured']:.3f}"
            met = {True: "yes", False: "no", None: "n/a"}[entry["met"]]
            if entry.get("note"):
                met += f" ({entry['note']})"
            lines.append(f"| {key} | {entry['what']} | {entry['comparison']} {entry['threshold']} | {measured} | {met} |")
        return lines

    def report(self):
        lines = ["| section | measure | ours | reference | ours/ref | note |", "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        table = "\n".join(lines)
        machine = machine_description(self.threads)
        self.results["machine"] = machine
        self.results["settings"] = {"quick": self.args.quick, "threads": self.threads, "warmup_steps": self.args.warmup,
                                    "measured_steps": self.args.steps, "seq_len": self.args.seq_len,
                                    "global_batch": self.args.global_batch, "micro_batch": self.args.micro_batch}
        headline = {k: self.results[k] for k in ("train_speedup_moe", "train_speedup_dense",
                                                 "train_speedup_moe_vs_compile", "train_speedup_dense_vs_compile",
                                                 "train_speedup_moe_vs_sparse_torch",
                                                 "train_speedup_dense_vs_sparse_torch", "lora_speedup_moe",
                                                 "lora_peak_rss_ratio", "mfu_dense", "mfu_dense_bf16",
                                                 "bf16_step_vs_fp32", "bf16_rss_vs_fp32", "tokenizer_vs_tiktoken",
                                                 "ep2_vs_1rank") if k in self.results}
        target_lines = self.targets()
        md = [f"# Benchmark results ({'quick' if self.args.quick else 'full'} run, {machine['date']})", "",
              f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']:.0f} GB; {machine['os']}; "
              f"torch {machine['torch']}, transformers {machine['transformers']}, peft {machine['peft']}.",
              f"Both sides: {self.threads} intra-op threads, the same config, weights, data and batch "
              f"(seq {self.args.seq_len} x {self.args.global_batch} rows per step, micro-batch {self.args.micro_batch}), "
              f"AdamW, median over {self.args.steps} measured steps after {self.args.warmup} warm-up steps. "
              f"References: HF transformers eager training loop (attn_implementation=sdpa), PEFT for LoRA; "
              f"the same loop under torch.compile (inductor, kernels built by {machine['cxx']}; the compiling "
              f"first step is a warm-up step, its time reported apart); a sparse PyTorch reference (HF's model "
              f"with each MoE layer routing tokens to their chosen experts only, scripts/bench/sparse_moe.py; "
              f"its logits and loss equal HF's, tests/bench/sparse_moe_test.py).", "",
              *self.notes, *([""] if self.notes else []),
              table, "", "Targets (null / n/a: not measured in this run or not applicable):", "", *target_lines, "",
              "Headline ratios (ours / reference; MFU as a fraction):", "",
              "```json", json.dumps(headline, indent=2), "```", ""]
        os.makedirs(self.args.out, exist_ok=True)
        with open(os.path.join(self.args.out, "results.md"), "w") as f:
            f.write("\n".join(md))
        with open(os.path.join(self.args.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=2)
        print(table)
        print(json.dumps(headline, indent=2))


def strip(result):
    return {k: v for k, v in result.items() if k != "run_dir"}


def machine_description(threads):
    import peft
    import torch
    import transformers
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    cxx = os.environ.get("CXX", "g++")  # the compiler torch.compile's inductor builds CPU kernels with
    try:
        cxx = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cxx += " (not found)"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory, "os": os_name, "threads": threads,
            "load_average": os.getloadavg(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "cxx": cxx, "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the headline numbers only, in under 5 minutes")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench"))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--only", default="", help="comma-separated sections: gemm,training,tokenizer,loader,ep,scaling")
    args = ap.parse_args()
    args.warmup = 1 if args.quick else 2
    args.steps = 5
    args.seq_len = 512 if args.quick else 1024
    args.global_batch = 4
    args.micro_batch = 2
    bench = Bench(args)
    bench.prepare_data()
    sections = ["gemm", "training", "tokenizer", "loader", "ep"] + ([] if args.quick else ["scaling"])
    if args.only:
        sections = [s for s in args.only.split(",")]
        if "gemm" not in sections:
            sections.insert(0, "gemm")
    for section in sections:
        started = time.perf_counter()
        {"gemm": bench.measure_gemm, "training": bench.training, "tokenizer": bench.tokenizer, "loader": bench.loader,
         "ep": bench.expert_parallel, "scaling": bench.scaling}[section]()
        print(f"[bench] {section}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    bench.report()


if __name__ == "__main__":
    main()
