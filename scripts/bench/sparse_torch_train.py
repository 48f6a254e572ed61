#!/usr/bin/env python3
"""The sparse PyTorch reference of the training benchmark: hf_train.py's loop over the same HF model directory,
with each MoE layer's forward replaced by sparse_moe.py's (tokens routed to their chosen experts only, through
torch._grouped_mm where it runs on CPU, else a loop over the experts). Dense layers are HF's own. Prints the
same JSON object as hf_train.py plus the number of MoE layers replaced and the expert kernel used.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_train  # noqa: E402
import sparse_moe  # noqa: E402


def main():
    ap = hf_train.argument_parser(__doc__)
    ap.add_argument("--experts", choices=sparse_moe.MODES,
                    help="expert kernel (default: grouped where torch._grouped_mm runs on CPU, else loop)")
    args = ap.parse_args()

    def prepare(model):
        replaced, mode = sparse_moe.use_sparse_experts(model, args.experts)
        return {"sparse_moe_layers": replaced, "experts_kernel": mode}

    hf_train.train(args, prepare)


if __name__ == "__main__":
    main()
