"""The paper's published numbers (Ma et al., "Deep Blur Mapping", IEEE TIP 2018), as data.

Reports print these beside the suite's measurements. Each table maps a row label to
``(ODS, OIS, AP)``; Table VI maps a method to seconds per 384 x 384 image.
"""

from __future__ import annotations

__all__ = ["TABLE_II", "TABLE_III", "TABLE_IV", "TABLE_V", "TABLE_VI", "table_for_split", "PAPER_TABLES",
           "TABLE_OF_SPLIT", "TABLE_II_ROWS", "TABLE_IV_ROWS", "ABLATION_TABLES", "ABLATION_PAPER_TABLE",
           "TABLE_VI_SIZE"]

#: Table II: the five configurations, trained on D_o, tested on D_e.
TABLE_II = {
    "Configuration I": (0.769, 0.790, 0.704),
    "Configuration II": (0.788, 0.816, 0.772),
    "Configuration III": (0.815, 0.850, 0.825),
    "Configuration IV": (0.836, 0.870, 0.855),
    "Configuration V": (0.853, 0.884, 0.880),
}

#: Table III: trained on D_o, tested on D_e.
TABLE_III = {
    "Liu08": (0.766, 0.811, 0.745),
    "Chakrabarti10": (0.758, 0.797, 0.757),
    "Zhuo11": (0.761, 0.862, 0.687),
    "Su11": (0.782, 0.822, 0.721),
    "Shi14": (0.776, 0.813, 0.843),
    "Chen16": (0.771, 0.867, 0.823),
    "Tang16": (0.765, 0.864, 0.774),
    "Yi16": (0.803, 0.841, 0.765),
    "HiFST": (0.813, 0.851, 0.717),
    "DBM": (0.853, 0.884, 0.880),
}

#: Table IV: DBM variants (trained on D_o, tested on D_e).
TABLE_IV = {
    "Training from scratch": (0.833, 0.876, 0.856),
    "FCN-8s": (0.840, 0.874, 0.847),
    "Fusion (w/o deep supervision)": (0.844, 0.877, 0.865),
    "Fusion (with deep supervision)": (0.854, 0.889, 0.876),
    "DBM": (0.853, 0.884, 0.880),
}

#: Table V: trained on D_e, tested on D_o.
TABLE_V = {
    "Liu08": (0.753, 0.803, 0.749),
    "Chakrabarti10": (0.741, 0.788, 0.741),
    "Zhuo11": (0.746, 0.853, 0.676),
    "Su11": (0.775, 0.814, 0.712),
    "Shi14": (0.765, 0.804, 0.831),
    "Chen16": (0.752, 0.859, 0.823),
    "Tang16": (0.746, 0.846, 0.755),
    "Yi16": (0.786, 0.829, 0.741),
    "HiFST": (0.804, 0.841, 0.706),
    "DBM": (0.852, 0.885, 0.876),
}

#: Table VI: seconds per 384 x 384 x 3 image (MATLAB / Caffe, 3.4 GHz CPU; DBM also on a Titan X).
TABLE_VI = {
    "Chakrabarti10": 0.7,
    "Zhuo11": 11.0,
    "Su11": 5.1,
    "Chen16": 1.0,
    "Tang16": 1.4,
    "Yi16": 20.1,
    "HiFST": 99.7,
    "DBM": 1.8,
    "DBM (GPU)": 0.027,
}


#: Table VI's image size (pixels): its seconds are per 384 x 384 x 3 image.
TABLE_VI_SIZE = (384, 384)

#: The registry names of the rows of Table II (the five configurations) -> the paper's row label.
#: Together with :data:`TABLE_IV_ROWS`, the one place that maps a method to its row of Table II or
#: IV (the rows of Tables III and V come from the registry's ``MethodSpec.paper_row``).
TABLE_II_ROWS = {
    "dbm_config_i": "Configuration I",
    "dbm_config_ii": "Configuration II",
    "dbm_config_iii": "Configuration III",
    "dbm_config_iv": "Configuration IV",
    "dbm": "Configuration V",
}
#: The registry names of the rows of Table IV (DBM and its variants) -> the paper's row label.
TABLE_IV_ROWS = {
    "dbm_scratch": "Training from scratch",
    "dbm_fcn8s": "FCN-8s",
    "dbm_fusion": "Fusion (w/o deep supervision)",
    "dbm_dsn": "Fusion (with deep supervision)",
    "dbm": "DBM",
}
#: The ablation tables (trained on D_o, tested on D_e, like Table III): id -> (title, rows, registry name -> row).
ABLATION_TABLES: dict[str, tuple[str, dict[str, tuple[float, float, float]], dict[str, str]]] = {
    "II": ("Table II (the five configurations, trained on D_o, tested on D_e)", TABLE_II, TABLE_II_ROWS),
    "IV": ("Table IV (DBM and its variants, trained on D_o, tested on D_e)", TABLE_IV, TABLE_IV_ROWS),
}
#: The test split of the ablation tables (Tables II and IV): the paper's numbers apply to CUHK D_e only.
ABLATION_PAPER_TABLE = "III"

#: The paper's tables of ODS/OIS/AP on CUHK, by table number: (title, rows).
PAPER_TABLES: dict[str, tuple[str, dict[str, tuple[float, float, float]]]] = {
    "III": ("Table III (trained on D_o, tested on D_e)", TABLE_III),
    "V": ("Table V (trained on D_e, tested on D_o)", TABLE_V),
}
#: Which table a tested CUHK half is compared with (canonical split names).
TABLE_OF_SPLIT = {"even": "III", "odd": "V"}


def table_for_split(split: str) -> tuple[str, dict[str, tuple[float, float, float]]] | None:
    """The paper table whose test set is ``split`` on CUHK: D_e -> Table III, D_o -> Table V."""
    from baselines.datasets import canonical_split

    table_id = TABLE_OF_SPLIT.get(canonical_split(split))
    return PAPER_TABLES[table_id] if table_id else None
