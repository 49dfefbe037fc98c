"""Yi16 speed on a 384 x 384 photo: the whole detector, and its two stages separately."""

import pytest

from baselines.yi16_lbp import Yi16LBP, fuse_scales, matted_sharpness_maps


def test_yi16_lbp_384(benchmark, photo384):
    """Whole method: LBP sharpness, matting and belief propagation at 3 scales."""
    benchmark(Yi16LBP(), photo384)


def test_yi16_matted_maps_384(benchmark, photo384):
    """Stage 1: LBP sharpness, seeds and coarse-to-fine matting for the 3 scales."""
    benchmark(matted_sharpness_maps, photo384)


@pytest.fixture(scope="module")
def maps384(photo384):
    return matted_sharpness_maps(photo384)


def test_yi16_fusion_384(benchmark, maps384):
    """Stage 2: loopy belief propagation over the 3-layer graph (to the authors' tolerance)."""
    belief, sweeps = benchmark(fuse_scales, maps384)
    benchmark.extra_info["sweeps"] = sweeps
