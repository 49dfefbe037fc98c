"""Facts of the DBM networks (Table I configurations, Table IV variants), random initialisation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dbm.model import (  # noqa: E402
    CAFFE_MEAN_BGR,
    CONFIGURATIONS,
    DBMNet,
    VGG_STAGES,
    build_model,
    count_parameters,
    load_weights,
    save_weights,
)

CASES = [(c, "plain") for c in CONFIGURATIONS] + [("V", v) for v in ("fcn8s", "fusion", "dsn")]


@pytest.fixture(scope="module")
def nets():
    return {case: build_model(*case, pretrained=False, seed=0).eval() for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c}-{v}" for c, v in CASES])
def test_any_size_maps_to_same_size_in_unit_range(nets, case):
    net = nets[case]
    x = torch.rand(1, 3, 97, 131, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # random head weights so the map is not the constant 0.5 of the zero-initialised score layer
        for m in net.head_modules():
            m.weight.normal_(0, 0.01, generator=torch.Generator().manual_seed(1))
        p = net.predict(x)
    assert p.shape == (1, 1, 97, 131)
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    assert float(p.max() - p.min()) > 1e-6


def _vgg_params(depth: int) -> int:
    total, c_in = 0, 3
    for channels, n in VGG_STAGES[:depth]:
        for _ in range(n):
            total += c_in * channels * 9 + channels
            c_in = channels
    return total


@pytest.mark.parametrize("config, depth", list(CONFIGURATIONS.items()))
def test_parameter_count_is_vgg16_trunk_plus_1x1(config, depth):
    net = DBMNet(depth)
    c_last = VGG_STAGES[depth - 1][0]
    assert count_parameters(net) == _vgg_params(depth) + c_last + 1
    # Table I: 3, 5, 8, 11, 14 weight layers
    n_weight_layers = sum(1 for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert n_weight_layers == {1: 3, 2: 5, 3: 8, 4: 11, 5: 14}[depth]


def test_configuration_v_downsamples_16x_with_ceil_pooling():
    net = DBMNet(5)
    feats = net.trunk(torch.zeros(1, 3, 97, 131))
    assert [tuple(f.shape[-2:]) for f in feats] == [(97, 131), (49, 66), (25, 33), (13, 17), (7, 9)]
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]


def test_caffe_input_convention_inside_the_model():
    net = DBMNet(1)
    rgb = torch.zeros(1, 3, 2, 2)
    rgb[:, 0] = 1.0  # pure red
    out = net.input(rgb)[0, :, 0, 0]
    expected = torch.tensor([0 - CAFFE_MEAN_BGR[0], 0 - CAFFE_MEAN_BGR[1], 255 - CAFFE_MEAN_BGR[2]])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("config,variant", [("V", "plain"), ("III", "plain"), ("V", "fcn8s"), ("IV", "fcn8s"),
                                            ("V", "fusion"), ("V", "dsn")])
def test_split_forward_equals_forward(config, variant):
    net = build_model(config, variant, pretrained=False, seed=3).eval()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in net.head_modules():
            m.weight.normal_(0, 0.01, generator=gen)
            m.bias.normal_(0, 0.1, generator=gen)
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    sides = variant == "dsn"
    with torch.no_grad():
        ref = net(x, return_sides=sides)
        for k in range(1, net.depth + 1):
            stages = net.cached_stages(k)
            assert k in stages and set(net.head_stages()) & set(range(1, k + 1)) <= set(stages)
            got = net.forward_cached(net.stage_features(x, stages), k, x.shape[-2:], return_sides=sides)
            torch.testing.assert_close(got, ref)
        with pytest.raises(ValueError, match="missing"):
            net.forward_cached({}, net.depth, x.shape[-2:])


def test_fusion_initialised_as_mean_of_sides_and_returns_sides():
    net = build_model("V", "dsn", pretrained=False, seed=0)
    assert torch.allclose(net.fuse.weight, torch.full_like(net.fuse.weight, 0.2))
    fused, sides = net(torch.rand(1, 3, 33, 35), return_sides=True)
    assert len(sides) == 5 and all(s.shape == fused.shape for s in sides)


def test_bad_configuration_and_variant_are_refused():
    with pytest.raises(ValueError, match="configuration"):
        build_model("VI", pretrained=False)
    with pytest.raises(ValueError, match="variant"):
        DBMNet(5, "unet")
    with pytest.raises(ValueError, match="depth 5"):
        DBMNet(3, "dsn")


def test_weights_roundtrip_fp16(tmp_path):
    net = build_model("II", "plain", pretrained=False, seed=1).eval()
    save_weights(net, tmp_path / "w.pt", {"input_size": 64})
    back, meta = load_weights(tmp_path / "w.pt")
    assert meta["input_size"] == 64 and back.depth == 2
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), net(x).numpy(), atol=0.05, rtol=0.01)
    (tmp_path / "bad.pt").write_bytes(b"not a weight file")
    with pytest.raises(ValueError, match="DBM weight file"):
        load_weights(tmp_path / "bad.pt")


# --- alignment for any input size (pad to a multiple of the stride, crop back) ---------------------------------------
def _random_head(net, seed=1):
    with torch.no_grad():
        for m in net.head_modules():
            m.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
    return net


def _step(h, w, column):
    x = torch.full((1, 3, h, w), 0.2)
    x[..., column:] = 0.8
    return x


@pytest.mark.parametrize("case", CASES, ids=[f"{c}-{v}" for c, v in CASES])
def test_a_shifted_step_edge_shifts_the_map_by_the_same_amount(nets, case):
    """401 px wide (not a multiple of 16): moving the edge 32 px right moves the map 32 px, exactly.

    Before the padding, the last feature column was stretched over the partial cell and the map
    moved by 30.8 px (Configuration V), misaligned by up to ~14 px at the right.
    """
    net = _random_head(nets[case])
    with torch.no_grad():
        a = net(_step(24, 401, 160))[0, 0]
        b = net(_step(24, 401, 192))[0, 0]
    window = slice(120, 200)
    assert float(a[:, window].max() - a[:, window].min()) > 1e-3  # the edge shows in the map
    errors = {s: float((b[:, 120 + s : 200 + s] - a[:, window]).abs().max()) for s in range(24, 41)}
    assert min(errors, key=errors.get) == 32
    assert errors[32] < 1e-4 * max(1.0, float(a.abs().max()))


@pytest.mark.parametrize("case", CASES, ids=[f"{c}-{v}" for c, v in CASES])
def test_extra_columns_on_the_right_do_not_move_the_map(nets, case):
    """The map of a 40 x 337 image equals, on the left, the map of its first 336 columns (16 x 21)."""
    net = _random_head(nets[case])
    x = torch.rand(1, 3, 40, 337, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = net(x)[0, 0]
        cut = net(x[..., :336])[0, 0]
    assert full.shape == (40, 337)
    torch.testing.assert_close(full[:, :200], cut[:, :200], atol=1e-4 * max(1.0, float(cut.abs().max())), rtol=0)


def test_padding_changes_nothing_at_multiples_of_the_stride():
    net = _random_head(build_model("V", pretrained=False, seed=0).eval())
    assert net.stride == 16 and DBMNet(3).stride == 4
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    assert net.pad(x) is x
    with torch.no_grad():
        ref = net.score(net.trunk(net.input(x))[-1])
        ref = torch.nn.functional.interpolate(ref, size=(48, 64), mode="bilinear", align_corners=False)
        torch.testing.assert_close(net(x), ref)
