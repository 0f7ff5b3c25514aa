"""The report's verdict table: who leads each measure, and who the faces cannot tell apart from the leader."""

import pytest

from facemath_core.report.comparison import standings


def entry(psnr, frechet, sharpness, auc_values, hits):
    """A method's scores as report.json holds them: (mean, 95% half-width) pairs, vectors and analogies."""
    vectors = [{"auc": a, "edited": 10, "success": 0.5, "preserved": 0.9} for a in auc_values]
    analogies = {"3": [{"success": hits / 40, "trials": 40, "preserved": 0.9}]}
    return {
        "psnr": psnr,
        "ssim": (0.5, 0.01),
        "frechet": frechet,
        "sharpness_ratio": sharpness,
        "oracle_agreement": (0.9, 0.01),
        "vectors": vectors,
        "analogies": analogies,
    }


@pytest.fixture
def rows():
    methods = {
        "A": entry((25.0, 0.2), (30.0, 2.0), (0.5, 0.02), [0.90, 0.92, 0.94], 36),
        "B": entry((24.9, 0.2), (10.0, 2.0), (0.9, 0.02), [0.80, 0.82, 0.84], 20),
        "C": entry((20.0, 0.2), (13.5, 2.0), (1.6, 0.02), [0.70, 0.71, 0.72], 10),
    }
    return {r["measure"]: r for r in standings(methods, [3])}


def test_the_leader_is_the_best_value_and_overlapping_intervals_tie(rows):
    # PSNR: A leads, B is 0.1 dB behind with intervals of 0.2 each (overlap), C is 5 dB behind.
    assert rows["PSNR"]["leader"] == "A" and rows["PSNR"]["tied"] == ["B"]
    # Frechet: lower is realer; B leads, C is 3.5 behind with half-widths 2 + 2 = 4 (tie), A is 20 behind.
    assert rows["realism (Frechet)"]["leader"] == "B" and rows["realism (Frechet)"]["tied"] == ["C"]


def test_sharpness_leads_by_closeness_to_the_original(rows):
    # |log 0.9| = 0.105 < |log 1.6| = 0.47 < |log 0.5| = 0.69: too sharp counts as far off as too blurred.
    assert rows["sharpness"]["leader"] == "B" and rows["sharpness"]["tied"] == []


def test_attribute_auc_and_analogies_use_their_own_intervals(rows):
    # Mean AUC 0.92 vs 0.82 over three attributes each: t intervals of about +-0.05, so no tie.
    assert rows["attribute AUC"]["leader"] == "A" and rows["attribute AUC"]["tied"] == []
    # 36/40 against 20/40: Wilson intervals [0.77, 0.96] and [0.35, 0.65] do not overlap.
    assert rows["3-exemplar analogies"]["leader"] == "A" and rows["3-exemplar analogies"]["tied"] == []
    # Identical values everywhere (SSIM, agreement, edit success): the first method leads and the rest tie.
    assert rows["SSIM"]["leader"] == "A" and rows["SSIM"]["tied"] == ["B", "C"]
