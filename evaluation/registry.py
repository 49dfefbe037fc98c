"""The one explicit registry of blur detectors: name -> :class:`MethodSpec`.

Every method the runner can evaluate is listed in :data:`METHODS`, a plain dict. Specs name
their detector class as ``"module:Class"`` and are imported only when used, so torch-based
methods cost nothing until asked for and ``baselines`` never needs torch.

``--methods all`` expands to every spec with ``in_all=True`` (plus external ``--maps``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import suite_dbm_loaded

__all__ = ["METHODS", "MethodSpec", "UnknownMethodError", "build", "get_detector", "load_class", "resolve_methods"]


@dataclass(frozen=True)
class MethodSpec:
    """How to build one registered detector.

    Attributes
    ----------
    target : str
        ``"package.module:ClassName"`` of a :class:`baselines.interface.Detector` subclass.
    summary : str
        One line for ``--help`` and reports.
    paper_row : str, optional
        The row label of this method in the paper's Tables III and V (``"HiFST"``), so the
        report can print the paper's numbers beside ours.
    in_all : bool
        Whether ``--methods all`` includes it (False for variants that need user weights).
    needs_torch : bool
        Whether the detector imports torch (informational; imports are lazy anyway).
    published_curve : str, optional
        The name of this method's image-averaged PR curve among those published with the HiFST
        evaluation code (``BlurDetection_<name>_PRCurve.txt``, all 1,000 CUHK images), for
        :mod:`evaluation.fidelity`.
    """

    target: str
    summary: str
    paper_row: str | None = None
    in_all: bool = True
    needs_torch: bool = False
    published_curve: str | None = None


#: name -> spec, one line per method, in the order of the paper's tables (reports keep this order).
METHODS: dict[str, MethodSpec] = {
    # The rows of the paper's Table III, in its order ----------------------------------------------
    "liu08": MethodSpec("baselines.liu08:Liu08", "Liu, Li & Jia 2008 spectrum slope, gradient span and saturation features, naive Bayes (trained)", paper_row="Liu08", published_curve="Liu"),
    "chakrabarti10": MethodSpec("baselines.chakrabarti10:Chakrabarti10", "Chakrabarti, Zickler & Freeman 2010 local box-blur likelihood, colour MRF", paper_row="Chakrabarti10", published_curve="Chakrabarti"),
    "zhuo11": MethodSpec("baselines.zhuo11:Zhuo11", "Zhuo & Sim 2011 re-blur defocus estimates at edges, matting-Laplacian propagation", paper_row="Zhuo11", published_curve="Zhuo"),
    "su11_svd": MethodSpec("baselines.su11_svd:Su11SVD", "Su et al. 2011 local singular value feature", paper_row="Su11", published_curve="Su"),
    "shi14": MethodSpec("baselines.shi14:Shi14", "Shi, Xu & Jia 2014 gradient, spectrum and learned-filter features, naive Bayes, multi-scale BP (trained)", paper_row="Shi14", published_curve="Shi"),
    "chen16": MethodSpec("baselines.chen16:Chen16", "Chen, Chen & Chang 2016 fast defocus map, superpixel-graph propagation", paper_row="Chen16", published_curve="Chang"),
    "tang16": MethodSpec("baselines.tang16:Tang16", "Tang et al. 2016 log averaged spectrum residual, superpixel neighbour refinement", paper_row="Tang16", published_curve="Tang"),
    "yi16_lbp": MethodSpec("baselines.yi16_lbp:Yi16LBP", "Yi & Eramian 2016 LBP sharpness, matting and multi-scale belief propagation", paper_row="Yi16", published_curve="Yi"),
    "hifst": MethodSpec("baselines.hifst:HiFST", "Golestaneh & Karam 2017 sorted high-frequency DCT coefficients of gradient magnitude, 4 scales", paper_row="HiFST", published_curve="HiFSTBlurMap"),
    "dbm": MethodSpec("dbm.detector:DBM", "Ma et al. 2018 deep blur mapper, Configuration V, shipped weights trained on CUHK (D_o; on D_o photos the D_e network)", paper_row="DBM", needs_torch=True),
    # Single low-level features (building blocks of Liu08/Shi14, Fig. 2) and a reference floor -----
    "gradient_energy": MethodSpec("baselines.gradient_energy:GradientEnergy", "log local gradient energy (not a paper row)"),
    "gradient_stats": MethodSpec("baselines.gradient_stats:GradientStats", "local gradient histogram span (Liu08/Shi14 feature; not a paper row)"),
    "spectral_slope": MethodSpec("baselines.spectral_slope:SpectralSlope", "local power spectrum slope (Liu08/Shi14 feature; not a paper row)"),
    "dbm_synthetic": MethodSpec("dbm.detector:DBMSynthetic", "DBM Configuration V trained on the suite's synthetic corpus (no CUHK photo)", in_all=False, needs_torch=True),
    "dbm_int8": MethodSpec("dbm.detector:DBMInt8", "DBM Configuration V, shipped weights, int8 trunk on the CPU (about 2x faster, same network)", in_all=False, needs_torch=True),
    # DBM configurations (Table II) and variants (Table IV): need weights=PATH from dbm.train ------
    "dbm_config_i": MethodSpec("dbm.detector:DBMConfigI", "DBM Configuration I (conv1_2), Table II; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_config_ii": MethodSpec("dbm.detector:DBMConfigII", "DBM Configuration II (conv2_2), Table II; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_config_iii": MethodSpec("dbm.detector:DBMConfigIII", "DBM Configuration III (conv3_3), Table II; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_config_iv": MethodSpec("dbm.detector:DBMConfigIV", "DBM Configuration IV (conv4_3), Table II; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_scratch": MethodSpec("dbm.detector:DBMScratch", "DBM trained from scratch, Table IV; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_fcn8s": MethodSpec("dbm.detector:DBMFCN8s", "DBM with FCN-8s skip layers, Table IV; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_fusion": MethodSpec("dbm.detector:DBMFusion", "DBM weighted fusion of side outputs, Table IV; needs weights=PATH", in_all=False, needs_torch=True),
    "dbm_dsn": MethodSpec("dbm.detector:DBMDSN", "DBM fusion with deep supervision, Table IV; needs weights=PATH", in_all=False, needs_torch=True),
}


class UnknownMethodError(KeyError):
    """An unknown method name; the message lists the known ones and a close match."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def _unknown(name: str, known: Iterable[str]) -> UnknownMethodError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownMethodError(f"unknown method {name!r}.{hint} Known methods: {', '.join(known)}")


def load_class(name: str) -> type:
    """Import and return the detector class registered as ``name``."""
    try:
        spec = METHODS[name]
    except KeyError:
        raise _unknown(name, METHODS) from None
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if module_name.startswith("dbm.") and not suite_dbm_loaded():
            raise ModuleNotFoundError(
                f"method {name!r}: 'import dbm' found Python's standard-library dbm module, not this suite's "
                "network package; import evaluation before anything imports dbm, or run from the repository folder"
            ) from exc
        raise
    return getattr(module, attr)


def build(name: str, *, device: str | None = None, weights: str | Path | None = None, **settings: Any):
    """The one front door: build the registered detector ``name``, ready to use.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    device : str, optional
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the methods that run on torch (ignored, and
        not checked, by the others).
    weights : path, optional
        For DBM and its configurations/variants: a weight file written by ``python -m dbm.train``.
        For the learned classical methods (``liu08``, ``shi14``): a state saved by the runner
        (``CACHE/<method>/<key>-train<digest>/model.npz``), loaded with ``set_state``.
    **settings
        The method's own settings (its class signature), validated by the method.

    Raises
    ------
    baselines.interface.InputError
        For a bad setting, a weight file that is missing or of the wrong kind, or a method that
        takes no weights.
    """
    from baselines.interface import InputError

    cls = load_class(name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = dict(settings)
    if device is not None and "device" in params:
        kwargs["device"] = device
    state_file = None
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise InputError(f"{weights}: weight file for {name} not found")
        if "weights" in params:
            kwargs["weights"] = str(weights)
        elif getattr(cls, "trainable", False):
            state_file = weights
        else:
            raise InputError(f"{weights}: {name} takes no weight file (it does not learn)")
    try:
        detector = cls(**kwargs)
    except InputError:
        raise
    except (TypeError, ValueError, FileNotFoundError) as exc:
        raise InputError(f"{name}: {exc}") from exc
    if state_file is not None:
        try:
            with np.load(state_file, allow_pickle=False) as data:
                detector.set_state({k: data[k] for k in data.files})
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{state_file}: not a saved {name} state ({exc}); use the model.npz the "
                             "runner writes when it trains the method") from exc
        detector.trained_on = f"state {state_file}"
    return detector


def get_detector(name: str, **settings: Any):
    """The same front door as :func:`build`, under its older name, kept for compatibility.

    ``get_detector(name, **kw)`` is exactly ``build(name, **kw)``: same parameters (``device``,
    ``weights`` and the method's settings), same checks, same result. New code should call
    :func:`build`; this alias stays so that existing scripts keep working.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    **settings
        Passed to :func:`build` unchanged.

    Returns
    -------
    baselines.interface.Detector
        What :func:`build` returns.
    """
    return build(name, **settings)


def resolve_methods(text: str | Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Expand a ``--methods`` value into a list of names.

    Parameters
    ----------
    text : str or iterable of str
        ``"all"``, a comma-separated list, or a list of names (``"all"`` may appear in it).
    extra : iterable of str
        Further valid names, e.g. the external ``--maps`` methods; ``all`` includes them.

    Raises
    ------
    UnknownMethodError
        For a name that is neither registered nor in ``extra``.
    """
    extra = list(extra)
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    known = set(METHODS) | set(extra)
    out: list[str] = []
    for item in items:
        if item == "all":
            names = [n for n, s in METHODS.items() if s.in_all] + extra
        elif item in known:
            names = [item]
        else:
            raise _unknown(item, known | {"all"})
        out.extend(n for n in names if n not in out)
    if not out:
        raise UnknownMethodError("no methods given; use --methods all or a comma-separated list")
    return out
