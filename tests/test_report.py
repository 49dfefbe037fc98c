"""The report writer on hand-made results: paper tables and differences, Tables II and IV, styles,
paginated map grids, per-threshold F, provenance, a self-contained page (no browser needed)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import report
from evaluation.datasets import Dataset
from evaluation.engine import MethodResult
from evaluation.metrics import MetricsAccumulator
from evaluation.paper import TABLE_II, TABLE_III, TABLE_IV


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "image").mkdir()
    (root / "gt").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
        mask = np.zeros((40, 56), np.uint8)
        mask[:, 20 + 5 * i:] = 255
        cv2.imwrite(str(root / "image" / f"img{i}.png"), img)
        cv2.imwrite(str(root / "gt" / f"img{i}.png"), mask)
    return Dataset(root).samples("all")


def _result(name: str, samples, quality: float, seed: int = 0, source: str = "detector") -> MethodResult:
    """A map that is the mask blended with noise (quality 1 = perfect)."""
    rng = np.random.default_rng(seed)
    acc, maps, seconds = MetricsAccumulator(), {}, {}
    for s in samples:
        m = s.mask()
        score = np.clip(quality * m + (1 - quality) * rng.random(m.shape), 0, 1)
        levels = np.round(score * 255).astype(np.uint8)
        acc.add(s.stem, levels, m)
        maps[s.stem] = levels
        if source == "detector":
            seconds[s.stem] = 0.01 * (seed + 1)
    return MethodResult(name, acc.scores(), seconds, None, source, None, maps)


def _write(out: Path, results, samples, paper_table=None, split="even", **kw) -> str:
    return report.write_outputs(out, results, dataset="cuhk", split=split, paper_table=paper_table,
                                samples=samples, grid=[s.stem for s in samples], **kw)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _section(md: str, title_start: str) -> str:
    """The markdown from the heading starting with ``title_start`` to the next heading of level <= 3."""
    m = re.search(rf"^### {re.escape(title_start)}.*?(?=^##)", md + "\n##", re.S | re.M)
    assert m, title_start
    return m.group(0)


def test_table_iii_layout_with_paper_numbers_and_differences(tmp_path, samples):
    results = [_result("hifst", samples, 0.7, 1), _result("dbm", samples, 0.9, 2), _result("gradient_energy", samples, 0.5, 3)]
    _write(tmp_path, results, samples, paper_table="III")
    md = (tmp_path / "report.md").read_text()
    main = _section(md, "Results: the paper's Table III")
    header = next(line for line in main.splitlines() if line.startswith("| Algorithm"))
    assert header == ("| Algorithm | ODS | OIS | AP | paper ODS | paper OIS | paper AP | \u0394 ODS | \u0394 OIS | "
                      "\u0394 AP | trained on |")
    rows = {r["method"]: r for r in _rows(tmp_path / "metrics.csv")}
    for name, label in (("hifst", "HiFST"), ("dbm", "DBM")):
        line = next(line for line in main.splitlines() if line.startswith(f"| {name} ({label}) |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        ours = [float(rows[name][m]) for m in ("ods", "ois", "ap")]
        assert cells[4:7] == [f"{v:.3f}" for v in TABLE_III[label]]
        for k in range(3):
            diff = float(cells[7 + k].replace("\u2212", "-"))
            assert diff == pytest.approx(ours[k] - TABLE_III[label][k], abs=6e-4)
    # Paper order: HiFST before DBM, then the rows the paper does not have; the missing paper rows named.
    assert main.index("| hifst (HiFST)") < main.index("| dbm (DBM)") < main.index("| gradient_energy |")
    assert "Paper rows not evaluated here: Liu08, Chakrabarti10" in main
    # The HTML groups the columns under ours / paper / ours - paper and colours the differences.
    page = (tmp_path / "index.html").read_text()
    assert '<th colspan="3" scope="colgroup">paper</th>' in page
    assert '<th colspan="3" scope="colgroup">ours \u2212 paper</th>' in page
    assert re.search(r'<td class="r (pos|neg)">[+\u2212]0\.\d{3}</td>', page)


def test_no_paper_column_on_other_data(tmp_path, samples):
    _write(tmp_path, [_result("hifst", samples, 0.7)], samples, paper_table=None)
    md = (tmp_path / "report.md").read_text()
    assert "paper ODS" not in md and "No paper column" in md
    assert "### Results\n" in md


def test_tables_ii_and_iv_beside_the_paper(tmp_path, samples):
    names = ["dbm_config_i", "dbm_config_iii", "dbm", "dbm_fusion", "dbm_dsn"]
    results = [_result(n, samples, 0.5 + 0.1 * i, i) for i, n in enumerate(names)]
    _write(tmp_path, results, samples, paper_table="III")
    md = (tmp_path / "report.md").read_text()
    t2 = _section(md, "The paper's Table II")
    t4 = _section(md, "The paper's Table IV")
    assert "| dbm_config_i (Configuration I) | " in t2 and "| dbm (Configuration V) | " in t2
    line = next(line for line in t2.splitlines() if line.startswith("| dbm_config_iii (Configuration III)"))
    assert [c.strip() for c in line.strip("|").split("|")][4:7] == [f"{v:.3f}" for v in TABLE_II["Configuration III"]]
    assert "Paper rows not evaluated here: Configuration II, Configuration IV." in t2
    line = next(line for line in t4.splitlines() if line.startswith("| dbm_fusion (Fusion (w/o deep supervision))"))
    assert [c.strip() for c in line.strip("|").split("|")][4:7] == [
        f"{v:.3f}" for v in TABLE_IV["Fusion (w/o deep supervision)"]]
    assert "| dbm (DBM) |" in t4 and "Training from scratch, FCN-8s" in t4
    # Configurations and variants are in their own tables, not in the main one (DBM is in all three).
    main = _section(md, "Results: the paper's Table III")
    assert "dbm_config_i" not in main and "dbm_fusion" not in main and "| dbm (DBM) |" in main
    # Elsewhere than CUHK D_e the same layout, without the paper's numbers.
    other = tmp_path / "other"
    _write(other, results, samples, paper_table=None, split="all")
    md = (other / "report.md").read_text()
    t2 = _section(md, "The paper's Table II")
    assert "paper ODS" not in t2 and "No paper column" in t2 and "| dbm_config_iii (Configuration III) |" in t2


def test_ablation_rows_map_registry_names_in_one_place():
    assert report.ablation_row_for("II", "dbm_config_iv") == "Configuration IV"
    assert report.ablation_row_for("II", "dbm") == "Configuration V"
    assert report.ablation_row_for("IV", "dbm_scratch") == "Training from scratch"
    assert report.ablation_row_for("IV", "dbm_dsn_authors") == "Fusion (with deep supervision)"  # --maps name
    assert report.ablation_row_for("II", "dbm_int8") is None and report.ablation_row_for("IV", "hifst") is None
    assert report.paper_row_for("hifst_published") == "HiFST" and report.paper_row_for("dbm_config_i") is None


def test_every_method_has_its_own_colour_and_style():
    names = ["dbm", *[f"method{i}" for i in range(40)]]
    styles = report.method_styles(names)
    keys = [(s["color"], str(s["linestyle"]), s["marker"]) for s in styles.values()]
    assert len(set(keys)) == len(names)
    # The first 28 others differ in colour and dashes alone; DBM is black, thicker and on top.
    first = [(styles[f"method{i}"]["color"], str(styles[f"method{i}"]["linestyle"])) for i in range(28)]
    assert len(set(first)) == 28
    assert styles["dbm"]["color"] == "#000000"
    assert styles["dbm"]["lw"] > max(s["lw"] for n, s in styles.items() if n != "dbm")
    assert styles["dbm"]["zorder"] > max(s["zorder"] for n, s in styles.items() if n != "dbm")
    # Neighbours in the list differ in both colour and line style.
    for i in range(27):
        a, b = styles[f"method{i}"], styles[f"method{i + 1}"]
        assert a["color"] != b["color"] and a["linestyle"] != b["linestyle"]


def test_map_grid_pages_and_stale_pages(tmp_path, samples):
    results = [_result(f"m{i:02d}", samples, 0.5, i) for i in range(12)]
    _write(tmp_path, results, samples)
    pages = sorted(p.name for p in tmp_path.glob("map_grid*.png"))
    assert pages == ["map_grid.png", "map_grid_2.png", "map_grid_3.png"]  # 5 methods a page
    from PIL import Image

    for p in pages:
        w, h = Image.open(tmp_path / p).size
        assert 400 < w <= 1400, (p, w)  # readable at page width
    page = (tmp_path / "index.html").read_text()
    assert page.count('alt="blur maps, page') == 3
    md = (tmp_path / "report.md").read_text()
    assert "(map_grid_3.png)" in md and "Page 3 of 3: m10, m11." in md
    _write(tmp_path, results[:2], samples)  # fewer methods: the old pages 2 and 3 go
    assert sorted(p.name for p in tmp_path.glob("map_grid*.png")) == ["map_grid.png"]


def test_grid_stems_spread_over_the_split(samples):
    class S:
        def __init__(self, stem):
            self.stem = stem

    many = [S(f"s{i:03d}") for i in range(100)]
    stems = report.grid_stems(many)
    assert len(stems) == report.GRID_IMAGES == 8 and stems[0] == "s000" and stems[-1] == "s099"
    assert report.grid_stems(many[:3]) == ["s000", "s001", "s002"]


def test_f_curve_saved_and_plotted(tmp_path, samples):
    results = [_result("a", samples, 0.6), _result("b", samples, 0.4, 1)]
    _write(tmp_path, results, samples)
    curves = _rows(tmp_path / "pr_curves.csv")
    assert "f_mean" in curves[0]
    f = np.array([float(r["f_mean"]) for r in curves if r["method"] == "a"])
    assert len(f) == 256 and f.max() == pytest.approx(results[0].scores.ods, abs=1e-6)
    assert (tmp_path / "f_threshold.png").stat().st_size > 0 and (tmp_path / "pr_curves.png").stat().st_size > 0
    md = (tmp_path / "report.md").read_text()
    assert "![F against threshold" in md and "![precision-recall curves" in md


def test_secondary_table_says_which_class_adaptive_f_scores(tmp_path, samples):
    _write(tmp_path, [_result("a", samples, 0.6)], samples)
    section = _section((tmp_path / "report.md").read_text(), "Secondary conventions")
    assert "adaptive F(beta^2=0.3), minority class, t = 2 x mean" in section
    assert "Not the paper's" in section or "not the paper's" in section


def test_timings_are_per_megapixel_and_beside_table_vi(tmp_path, samples):
    _write(tmp_path, [_result("hifst", samples, 0.6, 4), _result("ext", samples, 0.6, source="maps")], samples)
    section = _section((tmp_path / "report.md").read_text(), "Timings")
    line = next(line for line in section.splitlines() if line.startswith("| hifst |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # 3 images of 40 x 56 px, 0.05 s each: 0.05 s/image, 0.00224 MP -> 22.3 s/MP -> 3.29 s at 384 x 384.
    assert cells[1:4] == ["3", "0.050", "0.050"]
    assert float(cells[5]) == pytest.approx(0.05 / (40 * 56 / 1e6), rel=1e-2)
    assert float(cells[6]) == pytest.approx(0.05 / (40 * 56) * 384 * 384, rel=1e-2)
    assert cells[7] == "99.70"  # the paper's HiFST
    assert "| ext | 0 | precomputed maps: not timed |" in section
    assert "estimate, not a measurement" in section


def test_provenance_recorded_and_pruned(tmp_path, samples):
    cmd = ["python", "-m", "evaluation.run", "--split", "D_e", "--out", "/somewhere/out", "--methods", "a"]
    _write(tmp_path, [_result("a", samples, 0.6)], samples, command=cmd, dataset_path=samples[0].mask_path.parents[1])
    (run1,) = _rows(tmp_path / "runs.csv")
    assert run1["command"] == "python -m evaluation.run --split D_e --out /somewhere/out --methods a"
    assert run1["masks_sha256"].endswith("(3 masks)") and run1["photos_sha256"].endswith("(3 photos)")
    assert run1["numpy"] == np.__version__ and run1["cores"] and run1["threads"] and run1["cpu"]
    assert run1["dataset_path"] == str(samples[0].mask_path.parents[1].resolve())
    assert _rows(tmp_path / "metrics.csv")[0]["run"] == run1["run"]
    page = (tmp_path / "index.html").read_text()
    assert "How this was made" in page and "--split D_e --out /somewhere/out" in page and run1["date"] in page
    md = (tmp_path / "report.md").read_text()
    assert "## How this was made" in md and "`python -m evaluation.run --split even --methods a`" in md
    assert run1["date"][:10] in md and run1["suite_version"] in md
    # The same row written again: the first run no longer owns a row and leaves runs.csv.
    _write(tmp_path, [_result("a", samples, 0.6)], samples, command=cmd)
    (run2,) = _rows(tmp_path / "runs.csv")
    assert run2["run"] != run1["run"]
    # Another method kept from run 2, a third run adds one: both runs listed.
    _write(tmp_path, [_result("b", samples, 0.6)], samples, command=cmd)
    assert {r["run"] for r in _rows(tmp_path / "runs.csv")} == {r["run"] for r in _rows(tmp_path / "metrics.csv")}
    assert len(_rows(tmp_path / "runs.csv")) == 2


def test_rows_without_provenance_are_named(tmp_path, samples):
    _write(tmp_path, [_result("a", samples, 0.6)], samples)
    rows = _rows(tmp_path / "metrics.csv")
    rows[0]["run"] = ""
    with open(tmp_path / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _write(tmp_path, [_result("b", samples, 0.6)], samples)
    assert "No record of how these rows were made" in (tmp_path / "report.md").read_text()


def _copy_of(samples, root: Path, *, change_mask: bool = False):
    """The photos and masks of ``samples`` in another folder, the first mask changed if asked."""
    for sub in ("image", "gt"):
        (root / sub).mkdir(parents=True)
    for k, s in enumerate(samples):
        (root / "image" / s.image_path.name).write_bytes(s.image_path.read_bytes())
        mask = cv2.imread(str(s.mask_path), cv2.IMREAD_GRAYSCALE)
        if change_mask and k == 0:
            mask[:5] = 255 - mask[:5]
        cv2.imwrite(str(root / "gt" / s.mask_path.name), mask)
    return Dataset(root).samples("all")


def test_rows_scored_on_other_masks_of_the_same_name_are_flagged(tmp_path, samples):
    out = tmp_path / "out"
    assert "warning" not in _write(out, [_result("a", samples, 0.6)], samples)
    moved = _copy_of(samples, tmp_path / "moved")  # the same data elsewhere: one dataset
    assert "warning" not in _write(out, [_result("b", moved, 0.6)], moved)
    assert "not one dataset" not in (out / "report.md").read_text()
    other = _copy_of(samples, tmp_path / "other", change_mask=True)  # one mask differs: another dataset
    table = _write(out, [_result("c", other, 0.6)], other)
    warning = table.split("warning: ")[1]
    assert "not one dataset" in warning and "a, b on masks" in warning and "c on masks" in warning
    assert "Not one dataset" in (out / "report.md").read_text() and "Not one dataset" in (out / "index.html").read_text()
    # c evaluated again on the first folder's masks: one dataset again
    assert "warning" not in _write(out, [_result("c", samples, 0.6)], samples)
    assert "not one dataset" not in (out / "report.md").read_text().lower()


def test_page_is_self_contained(tmp_path, samples):
    _write(tmp_path, [_result("dbm", samples, 0.8), _result("hifst_published", samples, 0.6, source="maps")], samples,
           paper_table="III")
    page = (tmp_path / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    srcs = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert re.search(r'<img [^>]*width="\d+" height="\d+"', page)  # natural size: text stays >= 10 pt


def test_markdown_command_canonical():
    f = report._command_for_markdown
    assert f("python -m evaluation.run --split D_e --out 'a b' --methods x") == \
        "python -m evaluation.run --split even --methods x"
    assert f("python -m evaluation.run --out=o --split=d_o --train-split D_e") == \
        "python -m evaluation.run --split=odd --train-split even"
