"""Fig. 2 statistics on images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from evaluation import fig2
from evaluation.demo import ensure_demo


class _Sample:
    def __init__(self, rgb, mask):
        self.rgb, self.m = rgb, mask

    def mask(self):
        return self.m

    def image(self, shape=None):
        return self.rgb


def test_blur_steepens_the_spectrum_and_narrows_gradients(rng):
    """Thirds: flat grey (flat sharp), white noise (structured sharp), the noise Gaussian-blurred (blurred)."""
    noise = rng.random((160, 330))
    grey = np.full_like(noise, 0.5)
    grey[:, 110:220] = noise[:, 110:220]
    grey[:, 220:] = ndimage.gaussian_filter(noise, 2.0)[:, 220:]
    mask = np.zeros_like(grey, bool)
    mask[:, 220:] = True
    stats = fig2.patch_statistics([_Sample(np.dstack([grey] * 3), mask)], patches_per_kind=50)
    # White noise has a flat spectrum (slope ~0); blur makes it fall steeply.
    assert abs(stats["slope"]["structured sharp"]) < 0.6
    assert stats["slope"]["blurred"] < -3
    # Blurred gradients are concentrated near 0: higher density at 0 than the sharp noise's.
    centre = int(np.searchsorted(stats["grad_edges"], 0.0, side="right")) - 1  # the bin holding 0
    assert stats["grad_hist"]["blurred"][centre] > 2 * stats["grad_hist"]["structured sharp"][centre]
    # The flat region's gradients are all exactly 0: the split puts it below the energy median.
    assert stats["grad_hist"]["flat sharp"][centre] > stats["grad_hist"]["blurred"][centre]
    assert stats["n_patches"]["flat sharp"] > 0


def test_cli_on_demo(tmp_path, capsys):
    out = tmp_path / "f"
    assert fig2.main(["--out", str(out), "--limit", "3"]) == 0
    assert (out / "fig2.png").stat().st_size > 0
    text = (out / "fig2.csv").read_text()
    assert "a_gradient_density,blurred" in text and "b_power_spectrum,flat sharp" in text
    assert "power-spectral slope" in capsys.readouterr().out


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_figure_has_usable_ticks_and_names_a_missing_kind(rng):
    """A blurred band and a thin sharp strip: no 32 x 32 patch fits in the sharp regions, and the figure says so."""
    import matplotlib.pyplot as plt

    noise = rng.random((120, 120))
    grey = ndimage.gaussian_filter(noise, 2.0)
    grey[:, :40] = noise[:, :40]  # sharp strip 40 px wide: 24 px after the 8 px border, under 32
    mask = np.ones_like(grey, bool)
    mask[:, :40] = False
    stats = fig2.patch_statistics([_Sample(np.dstack([grey] * 3), mask)], patches_per_kind=20)
    assert stats["n_patches"]["structured sharp"] == 0 and stats["n_patches"]["flat sharp"] == 0
    missing = fig2.missing_kinds(stats)
    assert missing["a"] == [] and len(missing["b"]) == 2
    fig = fig2.figure(stats, "test")
    try:
        text = " ".join(_texts(fig))
        assert "No sample of structured sharp" in text and "flat sharp: no 32 x 32 patch" in text
        a, b = fig.axes[:2]
        fig.canvas.draw()
        # (b): frequencies labelled as fractions a reader can use; (a): gradient ticks every 0.1.
        assert [t.get_text() for t in b.get_xticklabels()] == ["1/32", "1/16", "1/8", "1/4", "1/2"]
        assert "spatial frequency (cycles per pixel)" == b.get_xlabel()
        ticks = [t.get_text().replace("\u2212", "-") for t in a.get_xticklabels() if t.get_text()]
        assert "0.0" in ticks and "0.2" in ticks and "-0.2" in ticks
        assert a.get_yscale() == "log" and b.get_yscale() == "log"
        sizes = {t.get_fontsize() for t in [*a.get_xticklabels(), *b.get_xticklabels(), a.xaxis.label, b.xaxis.label]}
        assert min(sizes) >= 10
    finally:
        plt.close(fig)


def test_cli_notes_a_missing_kind(tmp_path, capsys, rng):
    """A one-image dataset whose sharp part is a thin strip: the run succeeds and names what has no sample."""
    import cv2

    data = tmp_path / "d"
    (data / "image").mkdir(parents=True)
    (data / "gt").mkdir()
    noise = rng.random((96, 128))
    grey = ndimage.gaussian_filter(noise, 2.0)
    grey[:, :36] = noise[:, :36]
    cv2.imwrite(str(data / "image" / "a.png"), (np.dstack([grey] * 3) * 255).astype(np.uint8))
    mask = np.full(grey.shape, 255, np.uint8)
    mask[:, :36] = 0
    cv2.imwrite(str(data / "gt" / "a.png"), mask)
    out = tmp_path / "f"
    assert fig2.main(["--data", str(data), "--out", str(out)]) == 0
    assert (out / "fig2.png").stat().st_size > 0
    err = capsys.readouterr().err
    assert "no sample of structured sharp" in err and "no sample of flat sharp" in err


def test_cli_limit_overwrite_and_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "f"
    for bad in ("0", "-2", "x"):
        assert fig2.main(["--out", str(out), "--limit", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "--limit" in err[0] and ">= 1" in err[0]
    out.mkdir()
    (out / "fig2.csv").write_text("my curves")
    assert fig2.main(["--out", str(out), "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fig2.csv" in err[0] and "--overwrite" in err[0]
    assert (out / "fig2.csv").read_text() == "my curves" and not (out / "fig2.png").exists()
    assert fig2.main(["--out", str(out), "--limit", "1", "--overwrite"]) == 0
    assert (out / "fig2.csv").read_text().startswith("panel,kind,x,y")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    capsys.readouterr()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device", str(out / "fig2.png"))

    monkeypatch.setattr("dbm.fileio.atomic_write_bytes", full_disk)
    assert fig2.main(["--out", str(out), "--limit", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (and tqdm's progress bar)
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in err
