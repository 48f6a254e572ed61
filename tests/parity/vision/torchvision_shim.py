"""Stand-in for the few torchvision 0.28 tensor kernels that transformers' Llama4 image processor calls.

The torchvision wheels on our package index do not import with the CPU torch we pin (they are CUDA
builds of their compiled ops), yet `Llama4ImageProcessor` is a torchvision-backend processor. The
kernels it uses are thin wrappers over torch, so this module reproduces them line for line from
torchvision 0.28 (transforms/v2/functional/_geometry.py resize_image and pad_image, _misc.py
normalize_image, transforms/functional.py pil_to_tensor). `install()` registers it only when the real
torchvision cannot be imported; call it before importing transformers.
"""

import enum
import importlib.machinery
import platform
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _native_uint8_resize_on_cpu(interpolation):
    # torchvision: bilinear uint8 goes straight to interpolate() on AVX2/AVX512/ARM, else through float32.
    if interpolation == InterpolationMode.BILINEAR:
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in (
            "aarch64",
            "arm64",
        )
    return interpolation in (InterpolationMode.BICUBIC, InterpolationMode.LANCZOS)


def resize(image, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    if interpolation not in (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC):
        raise NotImplementedError(f"shim: interpolation {interpolation}")
    antialias = False if antialias is None else antialias
    shape = image.shape
    num_channels, old_height, old_width = shape[-3:]
    new_height, new_width = int(size[0]), int(size[1])
    if (new_height, new_width) == (old_height, old_width):
        return image
    dtype = image.dtype
    acceptable = [torch.float32, torch.float64]
    if image.device.type == "cpu" and _native_uint8_resize_on_cpu(interpolation):
        acceptable.append(torch.uint8)
    image = image.reshape(-1, num_channels, old_height, old_width)
    need_cast = dtype not in acceptable
    if need_cast:
        image = image.to(dtype=torch.float32)
    image = F.interpolate(image, size=[new_height, new_width], mode=interpolation.value, align_corners=False,
                          antialias=antialias)
    if need_cast:
        if interpolation == InterpolationMode.BICUBIC and dtype == torch.uint8:
            image = image.clamp_(min=0, max=255)
        if dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
            image = image.round_()
        image = image.to(dtype=dtype)
    return image.reshape(shape[:-3] + (num_channels, new_height, new_width))


def pad(image, padding, fill=None, padding_mode="constant"):
    if padding_mode != "constant":
        raise NotImplementedError("shim: only constant padding")
    left, top, right, bottom = padding
    fills = fill if isinstance(fill, (list, tuple)) else [0 if fill is None else fill]
    if any(f != fills[0] for f in fills):
        raise NotImplementedError("shim: per-channel fill values")
    shape = image.shape
    c, h, w = shape[-3:]
    image = image.reshape(-1, c, h, w)
    image = F.pad(image, [left, right, top, bottom], mode="constant", value=float(fills[0]))
    return image.reshape(shape[:-3] + image.shape[-3:])


def normalize(image, mean, std, inplace=False):
    if not image.is_floating_point():
        raise TypeError(f"Input tensor should be a float tensor. Got {image.dtype}.")
    mean = torch.as_tensor(mean, dtype=image.dtype, device=image.device)
    std = torch.as_tensor(std, dtype=image.dtype, device=image.device)
    if mean.ndim == 1:
        mean = mean.view(-1, 1, 1)
    if std.ndim == 1:
        std = std.view(-1, 1, 1)
    if inplace:
        image = image.sub_(mean)
    else:
        image = image.sub(mean)
    return image.div_(std)


def pil_to_tensor(pic):
    img = torch.as_tensor(np.array(pic, copy=True))
    img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
    return img.permute((2, 0, 1))


def _module(name):
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    m.__file__ = __file__
    sys.modules[name] = m
    return m


def install():
    """Makes `import torchvision` work; returns True if the shim (not the real package) is in use."""
    try:
        import torchvision  # noqa: F401

        return False
    except Exception:
        for name in list(sys.modules):
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]
    tv = _module("torchvision")
    tv.__version__ = "0.28.0"
    tr = _module("torchvision.transforms")
    tr.InterpolationMode = InterpolationMode
    trf = _module("torchvision.transforms.functional")
    trf.pil_to_tensor = pil_to_tensor
    v2 = _module("torchvision.transforms.v2")
    fn = _module("torchvision.transforms.v2.functional")
    fn.InterpolationMode = InterpolationMode
    fn.resize, fn.pad, fn.normalize, fn.pil_to_tensor = resize, pad, normalize, pil_to_tensor
    io = _module("torchvision.io")

    class ImageReadMode(enum.Enum):
        UNCHANGED = 0
        GRAY = 1
        GRAY_ALPHA = 2
        RGB = 3
        RGB_ALPHA = 4

    def decode_image(*args, **kwargs):
        raise NotImplementedError("shim: torchvision.io.decode_image")

    io.ImageReadMode, io.decode_image = ImageReadMode, decode_image
    tv.transforms, tv.io, tr.functional, tr.v2, v2.functional = tr, io, trf, v2, fn
    return True
