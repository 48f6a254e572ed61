"""Reads a training checkpoint back whole, for tests that compare runs: every tensor assembled from the
ranks' HDF5 pieces (rows along dim 0, as the manifest places them; bf16 tensors as their float32 values),
and comparisons that name the worst tensor."""
import json
import os

import h5py
import numpy as np


def load_checkpoint(ckpt_dir, step):
    """Every tensor of `ckpt_dir/step_<step>`, assembled from the ranks' pieces."""
    path = os.path.join(ckpt_dir, f"step_{step:07d}")
    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)
    out = {}
    files = {}
    for name, tensor in manifest["tensors"].items():
        full = None
        for piece in tensor["pieces"]:
            fname = piece["file"]
            if fname not in files:
                files[fname] = h5py.File(os.path.join(path, fname), "r")
            data = np.asarray(files[fname][piece["dataset"]])
            if piece.get("dtype", tensor.get("dtype")) == "bfloat16":  # stored as raw 16-bit words: widen
                data = (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            if full is None:
                full = np.zeros(tensor["global_shape"], dtype=data.dtype)
            if data.ndim == 0:
                full = data
            else:
                full[piece["row_begin"]: piece["row_begin"] + data.shape[0]] = data
        out[name] = full
    for f in files.values():
        f.close()
    return out


def max_diff(a, b):
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)), initial=0.0)) for k in a)


def compare(a, b, what, tol):
    """Asserts both checkpoints hold the same tensors, equal within `tol`; returns the largest difference."""
    assert set(a) == set(b), (what, sorted(set(a) ^ set(b)))
    diffs = {k: float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)), initial=0.0)) for k in a}
    name = max(diffs, key=diffs.get)
    worst = diffs[name]
    params = sum(1 for k in a if k.startswith("model."))
    print(f"{what}: {len(a)} tensors ({params} model), max |diff| {worst:.3e} ({name})")
    assert worst <= tol, (what, worst)
    return worst
