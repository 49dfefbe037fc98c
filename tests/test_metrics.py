"""The paper's metrics on hand-made cases whose answers are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.metrics import MetricsAccumulator, f_measure, image_counts, quantize


def _scores(*images):
    acc = MetricsAccumulator()
    for i, (levels, mask) in enumerate(images):
        acc.add(f"img{i}", np.asarray(levels, np.uint8), np.asarray(mask, bool))
    return acc.scores()


def test_quantize_rounds_half_up_and_clips():
    assert quantize(np.array([0.0, 0.5, 1.0, 1.2, -0.1, 1 / 255 * 0.49])).tolist() == [0, 128, 255, 255, 0, 0]
    levels = np.array([3, 250], np.uint8)
    assert quantize(levels) is levels


def test_ties_one_image():
    # mask: 2 blurred (levels 255, 128), 2 sharp (levels 128, 0).
    # t = 0: TP 2 FP 2 -> F = 4/6; t = 1..128: TP 2 FP 1 -> F = 4/5; t = 129..255: TP 1 FN 1 -> F = 2/3.
    s = _scores(([[255, 128], [128, 0]], [[1, 1], [0, 0]]))
    assert s.ods == pytest.approx(0.8)
    assert s.ods_threshold == 1
    assert s.ois == pytest.approx(0.8)
    # Pooled precision: 1/2 at t = 0, 2/3 for 128 thresholds, 1 for 127: mean over 256.
    assert s.ap == pytest.approx((0.5 + 128 * 2 / 3 + 127) / 256)
    # MAE: |1-1| + |128/255-1| + |128/255-0| + 0 = 1, over 4 pixels.
    assert s.mae == pytest.approx(0.25)
    assert s.precision[0] == pytest.approx(0.5) and s.recall[0] == 1.0
    assert s.precision[200] == 1.0 and s.recall[200] == 0.5


def test_ods_vs_ois_two_images():
    # Image A is perfect for t in 101..200, image B for t in 11..50.
    # Mean F: 2/3 (t <= 10), 5/6 (11..50), 1/3 (51..100), 1/2 (101..200), 0 above.
    s = _scores(([[200, 100]], [[1, 0]]), ([[50, 10]], [[1, 0]]))
    assert s.ods == pytest.approx(5 / 6)
    assert s.ods_threshold == 11
    assert s.ois == pytest.approx(1.0)
    # Pooled counts (BSDS): best at t = 11..50 with TP 2, FP 1 -> F = 4/5.
    assert s.ods_pooled == pytest.approx(0.8)
    assert [r["best_threshold"] for r in s.per_image] == [101, 11]


def test_all_blurred_mask():
    # Every pixel blurred, constant map 0.3 (level 77): F = 1 for t <= 77 and 0 above.
    s = _scores((np.full((4, 5), 77), np.ones((4, 5))))
    assert s.ods == 1.0 and s.ois == 1.0
    assert s.ap == 1.0  # precision 1 where defined; thresholds with no prediction are left out
    assert s.mae == pytest.approx(1 - 77 / 255)


def test_all_sharp_mask():
    # No blurred pixel: F = 0 while anything is predicted (t <= 77), and 1 (a perfect answer) above.
    s = _scores((np.full((4, 5), 77), np.zeros((4, 5))))
    assert s.ods == 1.0 and s.ods_threshold == 78
    assert s.ois == 1.0
    assert s.ap == 0.0  # the only defined precisions (t <= 77) are 0
    assert s.per_image[0]["blurred_fraction"] == 0.0


def test_constant_map_on_mixed_mask():
    # Constant 0.5 (level 128) on a half-blurred mask: F = 2/3 for t <= 128, 0 above; P = 1/2 where defined.
    s = _scores((np.full((2, 2), 128), [[1, 1], [0, 0]]))
    assert s.ods == pytest.approx(2 / 3)
    assert s.ois == pytest.approx(2 / 3)
    assert s.ap == pytest.approx(0.5)


def test_perfect_and_inverted_maps():
    mask = np.zeros((10, 10), bool)
    mask[:, :6] = True
    perfect = _scores((mask * 255, mask))
    assert perfect.ods == perfect.ois == 1.0
    inverted = _scores(((~mask) * 255, mask))
    # Best an inverted map can do is call everything blurred: P = 0.6, R = 1 -> F = 0.75.
    assert inverted.ods == pytest.approx(0.75)
    assert inverted.ap < 0.6


def test_fbeta_saliency_conventions():
    # beta^2 = 0.3 weighs precision: TP 1, FP 0, FN 1 -> 1.3 / (1.3 + 0.3) = 0.8125.
    assert f_measure(1, 0, 1, beta2=0.3) == pytest.approx(1.3 / 1.6)
    # Exactly half blurred: blur is the class scored (ties go to blur). Adaptive threshold = 2 x mean
    # level: map levels [255, 0, 0, 0] -> mean 63.75 -> t = 128: TP 1 FP 0 FN 1.
    s = _scores(([[255, 0], [0, 0]], [[1, 1], [0, 0]]))
    assert s.fbeta_adaptive_minority == pytest.approx(1.3 / 1.6)


def test_streaming_equals_concatenation(rng):
    """Adding images one by one gives the same pooled curve as one big concatenated image."""
    imgs = [(rng.integers(0, 256, (7, 9)).astype(np.uint8), rng.random((7, 9)) < 0.6) for _ in range(5)]
    s = _scores(*imgs)
    big = _scores((np.hstack([i for i, _ in imgs]), np.hstack([m for _, m in imgs])))
    np.testing.assert_allclose(s.precision, big.precision)
    np.testing.assert_allclose(s.recall, big.recall)
    assert s.ap == pytest.approx(big.ap)
    assert s.ods_pooled == pytest.approx(big.ods_pooled)


def test_counts_reject_shape_mismatch():
    with pytest.raises(ValueError, match="differs"):
        image_counts(np.zeros((3, 4), np.uint8), np.zeros((4, 3), bool))


def test_no_images_is_an_error():
    with pytest.raises(ValueError, match="no images"):
        MetricsAccumulator().scores()


def test_adaptive_f_uses_the_minority_class_when_blur_is_the_majority(rng):
    # 70% blurred (as on CUHK, 63%): a reasonable soft map, blurred pixels around 0.75 and sharp
    # ones around 0.25. Blur's "2 x mean" threshold would be ~1.1 (> 255 levels): F ~ 0. The
    # sharp class is the minority here, so F_beta is computed for it, with score 1 - map and
    # threshold 2 x mean sharpness (~0.8 of a ~0.4 mean), and is far from 0.
    mask = np.zeros((40, 100), bool)
    mask[:, 30:] = True
    soft = np.where(mask, 0.75, 0.25) + rng.normal(0, 0.1, mask.shape)
    s = _scores((quantize(np.clip(soft, 0, 1)), mask))
    assert s.fbeta_adaptive_minority > 0.5
    # What the old rule (blur positive, t = 2 x mean blur level) gives on the same map: about 0.
    levels = quantize(np.clip(soft, 0, 1)).astype(float)
    t = min(np.ceil(2 * levels.mean()), 255)
    pred = levels >= t
    tp, fp, fn = (pred & mask).sum(), (pred & ~mask).sum(), (~pred & mask).sum()
    assert f_measure(tp, fp, fn, beta2=0.3) < 0.05
    # Hand-checked: mask [[1, 1], [1, 0]], blur levels [[255, 200], [55, 0]]: sharpness [[0, 55], [200, 255]],
    # mean 127.5 -> t = 255: only the sharp pixel (255) is predicted sharp: TP 1, FP 0, FN 0 -> F = 1.
    s = _scores(([[255, 200], [55, 0]], [[1, 1], [1, 0]]))
    assert s.fbeta_adaptive_minority == pytest.approx(1.0)


def test_f_mean_curve_peaks_at_ods():
    s = _scores(([[200, 100]], [[1, 0]]), ([[50, 10]], [[1, 0]]))
    assert s.f_mean.shape == (256,)
    assert s.f_mean.max() == pytest.approx(s.ods) and int(np.argmax(s.f_mean)) == s.ods_threshold
