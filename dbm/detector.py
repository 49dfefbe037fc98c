"""DBM as a registered blur detector (Ma et al., "Deep Blur Mapping", IEEE TIP 2018).

``dbm`` is Configuration V with the weights shipped in ``dbm/weights/``: trained on CUHK D_o
(``dbm_cuhk_do.pt``), or on D_e (``dbm_cuhk_de.pt``) for photos of D_o; the runner picks the file
that never saw the tested photos (see ``dbm/weights/WEIGHTS.md``). ``dbm_synthetic`` is the
earlier network trained on the suite's synthetic corpus. The other names are the configurations
and variants of Tables II and IV; they have no shipped weights and need ``weights=PATH`` (a file
written by ``python -m dbm.train``; ``reports/ablations.sh`` trains all of them).

Inference follows the paper: the photo is resized to ``size x size`` (the paper uses 384; the
default is the weight file's ``inference_size``, else the size it was trained at), passed through
the network, and the probability map is resized back to the photo's size with bilinear
interpolation.

Departures
----------
* Weights: see ``dbm/weights/WEIGHTS.md`` (HED initialisation, stages 1-4 frozen, bf16).
* ``precision="bf16"`` runs the network under bfloat16 autocast (faster on CPUs with native
  bf16, slower on AVX2-only CPUs); the default is float32.
* ``precision="int8"`` runs the VGG16 trunk in int8 (post-training static quantization,
  :func:`dbm.model.quantize_int8`, with the activation ranges stored in the weight file by
  ``python -m dbm.quantize``): about twice as fast on x86 CPUs, maps within a few hundredths of
  the float32 ones (see ``dbm/weights/WEIGHTS.md`` for the measured agreement and speed). CPU only.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from baselines._checks import check_choice, check_int
from baselines.interface import Detector

__all__ = ["DBM", "DBMInt8", "DBMSynthetic", "DBMVariant", "MAX_SIZE", "MIN_SIZE", "PRECISIONS", "SHIPPED_WEIGHTS", "SHIPPED_WEIGHTS_DE",
           "SYNTHETIC_WEIGHTS"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Configuration V trained on CUHK's D_o (the training half of Table III): the default network.
SHIPPED_WEIGHTS = WEIGHTS_DIR / "dbm_cuhk_do.pt"
#: Configuration V trained on CUHK's D_e: the network for testing on D_o (Table V).
SHIPPED_WEIGHTS_DE = WEIGHTS_DIR / "dbm_cuhk_de.pt"
#: Configuration V trained on the suite's synthetic corpus (shipped before the real benchmark was at hand).
SYNTHETIC_WEIGHTS = WEIGHTS_DIR / "dbm_synthetic.pt"
#: Arithmetic of the forward pass (``precision`` setting).
PRECISIONS = ("fp32", "bf16", "int8")
_LOCK = threading.Lock()


#: Smallest network input side (other than 0, the photo's own size): two cells of Configuration V's
#: 16-pixel stride; below it the network sees a single cell and the map is constant. The one place
#: the input-size limits are written (``blur-map --size``, ``dbm.train --size``, the detector).
MIN_SIZE = 32
#: Largest network input side: a 4096 x 4096 input already needs about 4 GB for the first VGG16 stage.
MAX_SIZE = 4096


@lru_cache(maxsize=8)
def _load(path: str, mtime: float):
    from .model import load_weights

    model, meta = load_weights(path)
    return model, meta


@lru_cache(maxsize=4)
def _load_int8(path: str, mtime: float):
    from .model import quantize_int8

    model, meta = _load(path, mtime)
    record = meta["int8"]
    qmodel, _ = quantize_int8(model, qparams=record["qparams"], backend=record.get("backend", "x86"))
    return qmodel


def _network_int8(path: Path):
    path = Path(path)
    return _load_int8(str(path.resolve()), path.stat().st_mtime)


@lru_cache(maxsize=16)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _network(path: Path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DBM weights not found: {path}")
    return _load(str(path.resolve()), path.stat().st_mtime)


def _check_settings(name: str, *, size=None, precision="fp32", threads=None) -> None:
    """Raise :class:`~baselines.interface.InputError` for a DBM setting out of range (before torch is imported)."""
    if size is not None and not (size == 0 and not isinstance(size, (bool, np.bool_))):
        check_int(name, "size", size, minimum=MIN_SIZE, maximum=MAX_SIZE)  # 0 (keep the photo's size) too
    check_choice(name, "precision", precision, PRECISIONS)
    check_int(name, "threads", threads, minimum=1, allow_none=True)


class DBM(Detector):
    """Configuration V with the shipped weights (registry name ``dbm``).

    Parameters
    ----------
    weights : str, optional
        A weight file from :mod:`dbm.train` (default: the shipped Configuration V weights).
    size : int, optional
        Side of the square network input; ``0`` keeps the photo's size; default: the weight
        file's ``inference_size`` or training size (shipped weights: 384, the paper's size).
    precision : {"fp32", "bf16", "int8"}
        Arithmetic of the forward pass. ``"int8"`` (CPU only) needs a weight file with an int8
        calibration (``python -m dbm.quantize``; the shipped weights have one).
    threads : int, optional
        ``torch.set_num_threads`` for the forward pass (default: torch's choice).
    device : str
        ``"auto"`` (default: the first CUDA GPU when torch can use one, else the CPU), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"`` (:func:`dbm.device.resolve_device`); ``precision="int8"``
        runs on the CPU (``"auto"`` means the CPU there). Recorded in :attr:`settings` (and so in
        the map-cache key) when it is not the CPU.

    Raises
    ------
    ValueError
        Bad settings or weights; :class:`baselines.interface.InputError` (a ``ValueError``) for
        a misspelt device or a CUDA device this machine does not have (one-line messages; built
        inside :func:`dbm.device.devices_elsewhere`, for Dask GPU workers, the device is checked
        where the detector is unpickled, :meth:`__setstate__`).
    """

    name: ClassVar[str] = "dbm"
    version: ClassVar[str] = "2"  # 2: inputs padded to the stride and the map cropped back
    #: (depth, variant) the weights must have; None accepts any.
    expects: ClassVar[tuple[int, str] | None] = (5, "plain")

    def __init__(self, weights: str | None = None, size: int | None = None, precision: str = "fp32",
                 threads: int | None = None, device: str = "auto") -> None:
        _check_settings(self.name, size=size, precision=precision, threads=threads)
        from .device import parse_device, resolve_device

        requested = parse_device(device, option="device")
        if precision == "int8" and requested not in ("auto", "cpu"):
            raise ValueError("precision 'int8' runs on the CPU only (device='cpu')")
        device = "cpu" if precision == "int8" else resolve_device(requested, option="device")
        path = Path(weights) if weights else self._default_weights()
        settings: dict[str, Any] = {"weights": str(path) if weights else None, "size": size, "precision": precision}
        if threads is not None:
            settings["threads"] = threads
        if device != "cpu":
            settings["device"] = device
        super().__init__(**settings)
        self._path = path
        self._threads = threads
        self._device = device
        model, meta = _network(path)
        if self.expects is not None and (model.depth, model.variant) != self.expects:
            raise ValueError(f"{path}: weights are for depth {model.depth} {model.variant!r}, "
                             f"{self.name} needs depth {self.expects[0]} {self.expects[1]!r}")
        if precision == "int8":
            if model.variant != "plain":
                raise ValueError(f"{path}: precision 'int8' supports the plain variant only, not {model.variant!r}")
            if not isinstance(meta.get("int8"), dict) or "qparams" not in meta["int8"]:
                raise ValueError(f"{path}: the weight file has no int8 calibration; add one with "
                                 f"'python -m dbm.quantize --weights {path} --data TRAINING_DATA --out NEW.pt'")
        self.meta = meta
        default = meta.get("inference_size") or meta.get("input_size") or 384
        self.input_size = int(default) if size is None else int(size)
        self.trained_on = meta.get("trained_on")

    #: The shipped weight files this method may use, the default first.
    shipped: ClassVar[tuple[Path, ...]] = (SHIPPED_WEIGHTS, SHIPPED_WEIGHTS_DE)

    def _default_weights(self) -> Path:
        return self.shipped[0]

    @classmethod
    def weights_unseen_by(cls, digests: frozenset[str]) -> Path | None:
        """The first shipped weight file none of whose training photos is among ``digests``.

        ``digests`` are :func:`baselines.datasets.file_digest` values of the photos to be tested:
        on CUHK's D_e this is the D_o network (Table III), on D_o the D_e one (Table V); on any
        other photos the default. None when every shipped network saw some of them.
        """
        from .train import TRAIN_DIGESTS_KEY

        for path in cls.shipped:
            if path.is_file() and not set(_network(path)[1].get(TRAIN_DIGESTS_KEY) or ()) & digests:
                return path
        return None

    def training_digests(self) -> frozenset[str]:
        """Digests of the training photos recorded in the weight file (empty for older files)."""
        from .train import TRAIN_DIGESTS_KEY

        return frozenset(self.meta.get(TRAIN_DIGESTS_KEY) or ())

    def cache_key(self) -> str:
        """Name, version and settings, with the weight file keyed by its SHA-256, not its path.

        The same weights reached by another path (or as the default) share maps; new weights, new maps.
        """
        import hashlib
        import json

        digest = self._weights_digest()
        settings = {k: v for k, v in self.settings.items() if k != "weights"}
        blob = json.dumps({"name": self.name, "version": self.version, "settings": settings, "weights_sha256": digest},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def _weights_digest(self) -> str:
        stat = self._path.stat()
        return _file_digest(str(self._path.resolve()), stat.st_mtime_ns, stat.st_size)

    def __getstate__(self) -> dict:
        """Pickled for another process (a Dask GPU worker): the weight file travels as its path and SHA-256."""
        state = self.__dict__.copy()
        state["_path"] = self._path.resolve()
        state["_weights_sha256"] = self._weights_digest()
        state["_shipped_file"] = state["_path"].parent == WEIGHTS_DIR.resolve()
        return state

    def __setstate__(self, state: dict) -> None:
        """Unpickled where it will run: the same weights found there, and the device checked there.

        A shipped weight file is looked up in this installation (its path differs between
        machines); any other must be at the same path (a shared file system). The file must have
        the SHA-256 the client used, and a CUDA device must exist here.

        Raises
        ------
        baselines.interface.InputError
            One line naming the file (missing, or other bytes) or the device and the machine.
        """
        import socket

        from baselines.interface import InputError

        from .device import resolve_device

        digest, shipped = state.pop("_weights_sha256"), state.pop("_shipped_file")
        self.__dict__.update(state)
        host = socket.gethostname()
        if shipped:  # shipped weights: this installation's copy
            self._path = WEIGHTS_DIR / self._path.name
        if not self._path.is_file():
            raise InputError(f"{self._path}: weight file not found on {host}; put it at the same path on every "
                             "machine that runs the network (a shared file system)")
        if self._weights_digest() != digest:
            raise InputError(f"{self._path}: on {host} this file is not the one the client used (SHA-256 differs); "
                             "install the same version of the suite and the same weights everywhere")
        try:
            resolve_device(self._device, option="device")
        except InputError as exc:
            raise InputError(f"on {host}: {exc}") from None
        _network(self._path)  # loaded now, as the client's was when it was built, not during the first photo

    def compute(self, rgb: np.ndarray) -> np.ndarray:
        import cv2
        import torch

        from .device import full_fp32

        precision = self.settings["precision"]
        model = _network_int8(self._path) if precision == "int8" else _network(self._path)[0]
        h, w = rgb.shape[:2]
        s = self.input_size
        x = rgb if not s or (h, w) == (s, s) else cv2.resize(
            rgb, (s, s), interpolation=cv2.INTER_AREA if s * s < h * w else cv2.INTER_LINEAR)
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))[None])
        device = torch.device(self._device)
        with _LOCK:
            old = torch.get_num_threads()
            if self._threads:
                torch.set_num_threads(self._threads)
            try:
                if precision == "int8":
                    torch.backends.quantized.engine = self.meta["int8"].get("backend", "x86")
                else:
                    model.to(device)
                t = t.to(device)
                if device.type == "cpu" and precision == "bf16":
                    model = model.to(memory_format=torch.channels_last)
                    t = t.to(memory_format=torch.channels_last)
                with torch.inference_mode(), full_fp32(device, enabled=precision == "fp32"), \
                        torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    prob = torch.sigmoid(model(t).float())[0, 0].cpu().numpy()
            finally:
                if self._threads:
                    torch.set_num_threads(old)
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        return prob


class DBMVariant(DBM):
    """A configuration or variant of Tables II/IV: needs ``weights=PATH`` from :mod:`dbm.train`."""

    expects: ClassVar[tuple[int, str] | None] = None
    train_flags: ClassVar[str] = ""

    shipped: ClassVar[tuple[Path, ...]] = ()

    def _default_weights(self) -> Path:
        raise ValueError(f"{self.name} has no shipped weights: pass weights=PATH, a file written by "
                         f"'python -m dbm.train {self.train_flags} --data DATASET --out RUN' (RUN/final.pt)")


class DBMInt8(DBM):
    """Configuration V with the shipped weights run in int8 on the CPU (``precision="int8"``).

    Same network and weights as ``dbm``; the VGG16 trunk runs as int8 (post-training static
    quantization calibrated on training images, :mod:`dbm.quantize`), about twice as fast on
    x86 CPUs. Agreement with the float32 maps is measured in ``dbm/weights/WEIGHTS.md``.
    """

    name = "dbm_int8"
    shipped: ClassVar[tuple[Path, ...]] = (SHIPPED_WEIGHTS, SHIPPED_WEIGHTS_DE)

    def __init__(self, weights: str | None = None, size: int | None = None, precision: str = "int8",
                 threads: int | None = None, device: str = "auto") -> None:
        super().__init__(weights=weights, size=size, precision=precision, threads=threads, device=device)


class DBMSynthetic(DBM):
    """Configuration V trained on the suite's synthetic partial-blur corpus (``dbm/weights/WEIGHTS.md``).

    The network shipped before the real CUHK photos were available: never saw a CUHK photo, so it
    can be tested on any split; it scores below the CUHK-trained ``dbm`` on real photos.
    """

    name = "dbm_synthetic"
    shipped: ClassVar[tuple[Path, ...]] = (SYNTHETIC_WEIGHTS,)


def _variant(name: str, depth: int, variant: str, flags: str, doc: str) -> type[DBMVariant]:
    return type(name, (DBMVariant,), {"name": _NAMES[(depth, variant, flags)],
                                      "expects": (depth, variant), "train_flags": flags, "__doc__": doc,
                                      "__module__": __name__})


_NAMES = {
    (1, "plain", "--config I"): "dbm_config_i",
    (2, "plain", "--config II"): "dbm_config_ii",
    (3, "plain", "--config III"): "dbm_config_iii",
    (4, "plain", "--config IV"): "dbm_config_iv",
    (5, "plain", "--scratch"): "dbm_scratch",
    (5, "fcn8s", "--variant fcn8s"): "dbm_fcn8s",
    (5, "fusion", "--variant fusion"): "dbm_fusion",
    (5, "dsn", "--variant dsn"): "dbm_dsn",
}

DBMConfigI = _variant("DBMConfigI", 1, "plain", "--config I", "Configuration I (VGG16 up to conv1_2), Table II.")
DBMConfigII = _variant("DBMConfigII", 2, "plain", "--config II", "Configuration II (up to conv2_2), Table II.")
DBMConfigIII = _variant("DBMConfigIII", 3, "plain", "--config III", "Configuration III (up to conv3_3), Table II.")
DBMConfigIV = _variant("DBMConfigIV", 4, "plain", "--config IV", "Configuration IV (up to conv4_3), Table II.")
DBMScratch = _variant("DBMScratch", 5, "plain", "--scratch", "Configuration V trained from scratch, Table IV.")
DBMFCN8s = _variant("DBMFCN8s", 5, "fcn8s", "--variant fcn8s", "FCN-8s-style skip layers, Table IV.")
DBMFusion = _variant("DBMFusion", 5, "fusion", "--variant fusion", "Weighted fusion of five side outputs, Table IV.")
DBMDSN = _variant("DBMDSN", 5, "dsn", "--variant dsn", "Weighted fusion with deep supervision, Table IV.")
