"""The paper's blur-map metrics, computed in a streaming way from 256-bin histograms.

Conventions (those that reproduce the paper's Tables III and V exactly; see the CUHK README in the
shared data): blur is the positive class; a map is quantised to 256 levels
(:func:`quantize`: ``round(255 * score)``) and a pixel is *predicted blurred at threshold t* when
its level is ``>= t``, for ``t = 0 .. 255``. Per image, ``F(t) = 2PR / (P + R)``.

Primary metrics (the paper's):

ODS
    max over t of the MEAN over images of the per-image ``F(t)``.
OIS
    MEAN over images of the per-image max over t of ``F(t)``.
AP
    MEAN over the 256 thresholds of the precision of all test pixels concatenated.
PR curve
    precision and recall of all test pixels concatenated, one point per threshold.

Secondary metrics, named so they are never mistaken for the paper's:

``ods_pooled``
    BSDS convention: max over t of F computed from counts summed over all images.
``ap_area``
    area under the concatenated-pixel PR curve (step rule, the usual "average precision").
``fbeta_max``, ``fbeta_adaptive_minority``, ``mae``
    salient-object conventions: F with beta^2 = 0.3; ``fbeta_max`` is the max over t of the
    image-mean F_beta (blur positive). ``fbeta_adaptive_minority`` (a column called ``fbeta_adaptive`` in older
    results files held blur-positive F at ``2 x mean``; a report merging such a file drops that column,
    so no column mixes the two) is the image mean of F_beta **of each
    image's minority class** (by its ground truth) at that class's adaptive threshold, twice the
    mean score of that class: when blurred pixels are the minority, blur is the positive class,
    the score is the blur map and pixels with level ``>= ceil(2 x mean level)`` are predicted
    blurred; when sharp pixels are the minority (63% of CUHK's pixels are blurred, and blur is
    the majority in 77% of its images), sharp is the positive class, the score is ``255 - level``
    and pixels with ``255 - level >= ceil(2 x mean(255 - level))`` are predicted sharp (ties,
    exactly half blurred: blur). The "2 x mean" rule of salient-object detection assumes the
    positive class is a minority; applied to the blur class where blur is the majority it asks
    for a level above 255 and scores about 0 whatever the map. ``mae`` is the mean absolute error
    between the map (its 256 levels / 255) and the binary mask, averaged over images.
``f_mean`` (:attr:`Scores.f_mean`)
    the curve whose maximum is ODS: the image-mean F (blur positive, beta = 1) at each t.

Undefined cases: an F-score is ``2 TP / (2 TP + FP + FN)``, which equals ``2PR / (P + R)`` whenever
that is defined and is 0 when TP = 0 but something was predicted or missed. An image with no
blurred pixel and nothing predicted blurred at ``t`` is a perfect answer: F(t) = 1 there.
Pooled precision with no predicted pixel (possible only at high thresholds) is left out of the
AP mean.

Only two 256-bin histograms per image are kept (positives and negatives per level), so the whole
benchmark at full resolution needs a few megabytes.

Metric profiles (:data:`PROFILES`; the runner's ``--metrics paper,sod,dbd``): the paper's metrics
(``paper``, always computed) and, on request, the conventions of two other fields, each named
after its source, with its positive class, normalisation, binarisation and resizing stated in
its :class:`MetricProfile`: ``sod`` (what PySODMetrics computes for salient-object detection)
and ``dbd`` (what defocus-blur-detection repositories report). Their arithmetic is in
:mod:`evaluation.profiles`; every profile scores the 8-bit map (:func:`quantize`) against the
suite's binary mask with **blur as the positive class**, so numbers published on
"in focus = positive" (the DBD datasets' white = in focus masks) differ (which ones: each
profile's ``positive``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .profiles import SODAccumulator, dbd_fixed_threshold, dbd_kit_fmax

__all__ = [
    "BETA2_SALIENCY",
    "ImageCounts",
    "MetricProfile",
    "MetricsAccumulator",
    "PAPER_METRICS",
    "PROFILES",
    "PROFILE_FIELDS",
    "SCALAR_FIELDS",
    "SECONDARY_METRICS",
    "N_LEVELS",
    "Scores",
    "f_measure",
    "image_counts",
    "parse_profiles",
    "quantize",
]

N_LEVELS = 256
BETA2_SALIENCY = 0.3


def quantize(score: np.ndarray) -> np.ndarray:
    """Quantise a map in ``[0, 1]`` to uint8 levels ``round(255 * score)`` (halves round up)."""
    score = np.asarray(score)
    if score.dtype == np.uint8:
        return score
    return np.clip(np.floor(score.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ImageCounts:
    """Per-level pixel counts of one image: ``pos[k]`` blurred and ``neg[k]`` sharp pixels at level k."""

    pos: np.ndarray
    neg: np.ndarray

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())

    @property
    def n_pixels(self) -> int:
        return int(self.pos.sum() + self.neg.sum())


def image_counts(levels: np.ndarray, blurred: np.ndarray) -> ImageCounts:
    """Histogram a quantised map (uint8) against a boolean mask (True = blurred)."""
    levels = quantize(levels)
    blurred = np.asarray(blurred, dtype=bool)
    if levels.shape != blurred.shape:
        raise ValueError(f"map shape {levels.shape} differs from mask shape {blurred.shape}")
    pos = np.bincount(levels[blurred].ravel(), minlength=N_LEVELS).astype(np.int64)
    neg = np.bincount(levels[~blurred].ravel(), minlength=N_LEVELS).astype(np.int64)
    return ImageCounts(pos, neg)


def _at_or_above(hist: np.ndarray) -> np.ndarray:
    """``out[..., t] = sum_{k >= t} hist[..., k]``."""
    return np.flip(np.cumsum(np.flip(hist, axis=-1), axis=-1), axis=-1)


def f_measure(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, beta2: float = 1.0) -> np.ndarray:
    """F_beta = (1 + b2) TP / ((1 + b2) TP + b2 FN + FP); 1 where TP = FP = FN = 0."""
    tp = np.asarray(tp, dtype=np.float64)
    num = (1.0 + beta2) * tp
    den = num + beta2 * np.asarray(fn, dtype=np.float64) + np.asarray(fp, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def _adaptive_threshold(hist: np.ndarray) -> np.ndarray:
    """Per image (rows of a level histogram): ``ceil(2 x mean level)``, at most 255 (the SOD rule)."""
    levels = np.arange(N_LEVELS, dtype=np.float64)
    total = hist.sum(axis=1)
    mean_level = (hist * levels).sum(axis=1) / np.where(total > 0, total, 1)
    return np.minimum(np.ceil(2.0 * mean_level - 1e-9), N_LEVELS - 1).astype(int)


def _fbeta_adaptive_minority(pos: np.ndarray, neg: np.ndarray, beta2: float) -> np.ndarray:
    """F_beta of each image's minority class at that class's adaptive threshold (2 x its mean score).

    ``pos``/``neg``: (n_images, 256) histograms of the blurred / sharp pixels over the blur levels.
    Blur is the positive class of an image when at most half its pixels are blurred; otherwise
    sharp is, with score ``255 - level`` (the histograms flipped), so the same rule applies.
    """
    blur_minority = pos.sum(axis=1) <= neg.sum(axis=1)
    p = np.where(blur_minority[:, None], pos, np.flip(neg, axis=1))  # the positive class, by its own score
    q = np.where(blur_minority[:, None], neg, np.flip(pos, axis=1))
    t = _adaptive_threshold(p + q)
    rows = np.arange(len(p))
    tp = _at_or_above(p)[rows, t]
    fp = _at_or_above(q)[rows, t]
    fn = p.sum(axis=1) - tp
    return f_measure(tp, fp, fn, beta2)


@dataclass
class Scores:
    """Results for one method on one set of images."""

    n_images: int
    ods: float
    ods_threshold: int
    ois: float
    ap: float
    ods_pooled: float
    ap_area: float
    fbeta_max: float
    fbeta_adaptive_minority: float
    mae: float
    precision: np.ndarray = field(repr=False)  # concatenated-pixel PR curve, one point per threshold
    recall: np.ndarray = field(repr=False)
    #: Mean over images of the per-image F(t) (blur positive), one value per threshold: ODS is its maximum.
    f_mean: np.ndarray = field(repr=False, default=None)
    #: Image-averaged PR curve (mean per-image P and R at each t, undefined P left out), the
    #: convention of the curves published with the HiFST evaluation code.
    precision_image_mean: np.ndarray = field(repr=False, default=None)
    recall_image_mean: np.ndarray = field(repr=False, default=None)
    per_image: list[dict] = field(repr=False, default_factory=list)
    #: The columns of the extra metric profiles computed (:data:`PROFILE_FIELDS`), by name.
    profile_values: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict:
        """The scalar fields (:data:`SCALAR_FIELDS`) and the profile columns computed, for a CSV row."""
        return {**{k: getattr(self, k) for k in SCALAR_FIELDS}, **self.profile_values}


#: The paper's metrics, in the order of its tables.
PAPER_METRICS = ("ods", "ois", "ap")
#: Other conventions, reported apart from the paper's: field -> column title.
SECONDARY_METRICS = {
    "ods_pooled": "ODS (pooled counts, BSDS)",
    "ap_area": "AP (area under PR)",
    "fbeta_max": "max F(beta^2=0.3)",
    "fbeta_adaptive_minority": "adaptive F(beta^2=0.3), minority class, t = 2 x mean",
    "mae": "MAE",
}
#: Every scalar field of :class:`Scores`, in CSV column order (derived from the two above).
SCALAR_FIELDS = ("n_images", *PAPER_METRICS, "ods_threshold", *SECONDARY_METRICS)


@dataclass(frozen=True)
class MetricProfile:
    """One field's metric conventions: where they come from and how a map and mask are read.

    Attributes
    ----------
    name : str
        The name given to ``--metrics`` (after its source).
    title : str
        A heading for the report.
    source : str
        The code or paper whose numbers the profile reproduces.
    positive, normalisation, binarisation, resizing : str
        How the profile reads a map and a mask (one sentence each).
    metrics : dict
        Column of ``metrics.csv`` -> its label in the report, in the report's order.
    """

    name: str
    title: str
    source: str
    positive: str
    normalisation: str
    binarisation: str
    resizing: str
    metrics: dict

    def description(self) -> str:
        """The profile's conventions as one paragraph (report captions)."""
        return (f"Source: {self.source}. Positive class: {self.positive} Normalisation: {self.normalisation} "
                f"Binarisation: {self.binarisation} Resizing: {self.resizing}")


def _blur_positive(changed: str, unchanged: str) -> str:
    """A profile's positive class: blur, and what scoring in focus as positive would change."""
    return ("blurred (the suite's convention: masks read True = blurred, maps 255 = blurred). The DBD datasets' "
            "masks are white = in focus and that field usually scores in focus as positive, i.e. map and mask both "
            f"inverted: that changes the {changed} and leaves {unchanged} unchanged.")


_MASK = "masks as the suite reads them (level >= 128 of 255 is white, then inverted for white = in focus datasets)"
_RESIZE = ("none: maps are scored at the mask's (native) resolution; maps of another size are refused unless "
           "--maps-resize resizes them to the mask's size (stated in the report's notes).")

#: The metric profiles, by ``--metrics`` name: the paper's (always computed) and two other fields'.
PROFILES = {
    "paper": MetricProfile(
        name="paper", title="the paper's metrics",
        source="Ma et al. 2018 (IEEE TIP), Tables III-V; the conventions that reproduce its HiFST rows",
        positive="blurred (the paper's convention).",
        normalisation="none: the 8-bit map as stored (levels round(255 x score)).",
        binarisation=f"{_MASK}; the map at every level t = 0..255 (level >= t).",
        resizing=_RESIZE,
        metrics={"ods": "ODS", "ois": "OIS", "ap": "AP"}),
    "sod": MetricProfile(
        name="sod", title="salient-object conventions (PySODMetrics)",
        source="PySODMetrics 1.6.2 (Fmeasure, MAE, Smeasure, Emeasure, WeightedFmeasure), reproduced operation for "
               "operation and checked against the package (tox -e sod-crosscheck)",
        positive=_blur_positive("F-measures, adaptive E-measure, S-measure and weighted F",
                                "the MAE and the max and mean E-measure"),
        normalisation="per image min-max, as MATLAB's mapminmax: (l / 255 - min) / (max - min), unchanged when "
                      "the map is constant.",
        binarisation=f"{_MASK}, where PySODMetrics takes > 128 (the same for 0/255 masks); for max and mean F "
                     "and E the normalised map truncated to 8 bits, floor(255 x "
                     "pred) >= t for t = 0..255 (the mean over images per t, then its maximum or its mean over t); "
                     "adaptive: pred >= min(2 x mean(pred), 1); F with beta^2 = 0.3, 0 when TP = 0; S-measure "
                     "alpha = 0.5; weighted F beta^2 = 1, 0 for a mask with no blurred pixel.",
        resizing=_RESIZE,
        metrics={"sod_fbeta_max": "max F(beta^2=0.3)", "sod_fbeta_mean": "mean F(beta^2=0.3)",
                 "sod_fbeta_adaptive": "adaptive F(beta^2=0.3)", "sod_wfbeta": "weighted F",
                 "sod_smeasure": "S-measure", "sod_emeasure_max": "max E-measure",
                 "sod_emeasure_mean": "mean E-measure", "sod_emeasure_adaptive": "adaptive E-measure",
                 "sod_mae": "MAE (min-max normalised map)"}),
    "dbd": MetricProfile(
        name="dbd", title="defocus-blur-detection conventions",
        source="F and IoU of the map binarised at a fixed threshold, as DBD repositories' test scripts report them "
               "(the threshold, 0.5, is the suite's choice, stated below); Fmax of the evaluate_dbd "
               "MATLAB kit of Zhao et al. (github.com/wdzhao123/APL, MLDBD: Fmeasure_calu.m, performCalcu.m), "
               "reproduced from its source",
        positive=_blur_positive("F, IoU and Fmax", "the MAE"),
        normalisation="none for F, IoU and MAE (level / 255); the kit's Fmax divides the map by its maximum "
                      "(im2double, then s / max(s)).",
        binarisation=f"{_MASK}, where the kit takes >= 0.1 of full scale (the same for 0/255 masks); "
                     "F(beta^2 = 0.3) and IoU at score >= 0.5 (level >= 128), per image, 1 when "
                     "nothing is blurred or predicted, 0 when TP = 0 otherwise; the kit's Fmax: per image the best "
                     "F(beta^2 = 0.3) over s >= i x 0.00392157, i = 1..255, averaged over the images whose map is "
                     "not all zero (the kit's totalNum; its handling of masks with no positive pixel is kept).",
        resizing=_RESIZE + " The kit resizes maps with MATLAB's imresize (bicubic), the identity at native size.",
        metrics={"dbd_fbeta_at_128": "F(beta^2=0.3) at 0.5", "dbd_iou_at_128": "IoU at 0.5",
                 "dbd_fmax": "Fmax (evaluate_dbd kit)", "mae": "MAE"}),
}
#: The columns of the extra profiles that are not already :data:`SCALAR_FIELDS` (``metrics.csv`` adds them).
PROFILE_FIELDS = tuple(dict.fromkeys(k for p in PROFILES.values() for k in p.metrics if k not in SCALAR_FIELDS))


def parse_profiles(text: str) -> tuple[str, ...]:
    """``--metrics`` text (comma-separated profile names) -> the profiles, ``paper`` first and always included.

    Raises
    ------
    ValueError
        One line naming the unknown profile and the known ones.
    """
    names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown or not names:
        raise ValueError(f"unknown metric profile {', '.join(map(repr, unknown)) or repr(text)}; "
                         f"choose from {', '.join(PROFILES)} (comma-separated, e.g. paper,sod,dbd)")
    return tuple(dict.fromkeys(["paper", *names]))


class MetricsAccumulator:
    """Collects per-image histograms and computes :class:`Scores`.

    Examples
    --------
    >>> acc = MetricsAccumulator()
    >>> acc.add("a", np.array([[0.9, 0.1]]), np.array([[True, False]]))
    >>> round(acc.scores().ods, 3)
    1.0
    """

    def __init__(self, profiles: tuple[str, ...] | list[str] = ("paper",)) -> None:
        unknown = [p for p in profiles if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown metric profile {unknown[0]!r}; choose from {', '.join(PROFILES)}")
        self.profiles = tuple(dict.fromkeys(["paper", *profiles]))
        self.stems: list[str] = []
        self._pos: list[np.ndarray] = []
        self._neg: list[np.ndarray] = []
        #: the ``sod`` profile needs each whole map (S-measure, weighted F): its values are kept per image
        self._sod = SODAccumulator() if "sod" in self.profiles else None

    def __len__(self) -> int:
        return len(self.stems)

    def add(self, stem: str, score: np.ndarray, blurred: np.ndarray) -> ImageCounts:
        """Add one image: its map in [0, 1] (or uint8 levels) and mask (True = blurred)."""
        counts = image_counts(score, blurred)
        if self._sod is not None:
            self._sod.add(quantize(score), np.asarray(blurred, dtype=bool))
        self._append(stem, counts)
        return counts

    def add_counts(self, stem: str, counts: ImageCounts) -> None:
        """Add one image by its histograms (not with the ``sod`` profile, which needs the map: use :meth:`add`)."""
        if self._sod is not None:
            raise ValueError("the sod metric profile needs each image's map: add images with add(), not add_counts()")
        self._append(stem, counts)

    def _append(self, stem: str, counts: ImageCounts) -> None:
        self.stems.append(stem)
        self._pos.append(counts.pos)
        self._neg.append(counts.neg)

    def scores(self) -> Scores:
        """Compute every metric over the images added so far."""
        if not self.stems:
            raise ValueError("no images were evaluated")
        pos = np.stack(self._pos).astype(np.float64)  # (n, 256)
        neg = np.stack(self._neg).astype(np.float64)
        n_pos = pos.sum(axis=1, keepdims=True)
        n_pix = n_pos + neg.sum(axis=1, keepdims=True)
        tp = _at_or_above(pos)
        fp = _at_or_above(neg)
        fn = n_pos - tp

        # Paper: per-image F, ODS over the image mean, OIS over per-image maxima.
        f_img = f_measure(tp, fp, fn)
        f_mean = f_img.mean(axis=0)
        t_ods = int(np.argmax(f_mean))
        best = f_img.max(axis=1)

        # Concatenated pixels: one PR curve; the paper's AP = mean of its precision.
        tp_all, fp_all = tp.sum(axis=0), fp.sum(axis=0)
        npos_all = float(n_pos.sum())
        pred = tp_all + fp_all
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(pred > 0, tp_all / np.where(pred > 0, pred, 1), np.nan)
            recall = tp_all / npos_all if npos_all > 0 else np.full(N_LEVELS, np.nan)
        ap = float(np.nanmean(precision)) if np.any(pred > 0) else float("nan")
        f_pooled = f_measure(tp_all, fp_all, npos_all - tp_all)
        # Area under the PR curve by the step rule, recall falling as t rises.
        valid = pred > 0
        r_next = np.append(recall[1:], 0.0)
        ap_area = float(np.nansum(np.where(valid, (recall - r_next) * precision, 0.0)))

        # Salient-object conventions.
        fb_img = f_measure(tp, fp, fn, BETA2_SALIENCY)
        levels = np.arange(N_LEVELS, dtype=np.float64)
        fb_adapt = _fbeta_adaptive_minority(pos, neg, BETA2_SALIENCY)
        mae_img = ((pos * (1.0 - levels / 255.0)).sum(axis=1) + (neg * levels / 255.0).sum(axis=1)) / n_pix[:, 0]

        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: undefined, stay NaN
            p_img = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), np.nan)
            r_img = np.where(n_pos > 0, tp / np.where(n_pos > 0, n_pos, 1), np.nan)
            p_img_mean = np.nanmean(p_img, axis=0)
            r_img_mean = np.nanmean(r_img, axis=0)

        per_image = [
            {
                "stem": s,
                "n_pixels": int(n_pix[i, 0]),
                "blurred_fraction": float(n_pos[i, 0] / n_pix[i, 0]),
                "f_best": float(best[i]),
                "best_threshold": int(np.argmax(f_img[i])),
                "f_at_ods": float(f_img[i, t_ods]),
                "mae": float(mae_img[i]),
            }
            for i, s in enumerate(self.stems)
        ]
        return Scores(
            n_images=len(self.stems),
            ods=float(f_mean[t_ods]),
            ods_threshold=t_ods,
            ois=float(best.mean()),
            ap=ap,
            ods_pooled=float(f_pooled.max()),
            ap_area=ap_area,
            fbeta_max=float(fb_img.mean(axis=0).max()),
            fbeta_adaptive_minority=float(fb_adapt.mean()),
            f_mean=f_mean,
            mae=float(mae_img.mean()),
            precision=precision,
            recall=recall,
            per_image=per_image,
            precision_image_mean=p_img_mean,
            recall_image_mean=r_img_mean,
            profile_values=self._profile_values(),
        )

    def _profile_values(self) -> dict[str, float]:
        """The columns of the extra profiles chosen (the ``dbd`` ones from the histograms, ``mae`` shared)."""
        values: dict[str, float] = {}
        if self._sod is not None:
            values.update(self._sod.scores())
        if "dbd" in self.profiles:
            pos, neg = np.stack(self._pos), np.stack(self._neg)
            values.update(dbd_fixed_threshold(pos, neg))
            values["dbd_fmax"] = dbd_kit_fmax(pos, neg)
        return {k: v for k, v in values.items() if k in PROFILE_FIELDS}
