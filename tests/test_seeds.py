"""moewir.metrics.seeds against printed Student-t tables and hand-computed intervals."""
import math

import pytest

from moewir.metrics.seeds import mean_std, paired_difference, t_quantile


@pytest.mark.parametrize("p, df, table", [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776),
                                          (0.975, 9, 2.262), (0.975, 30, 2.042), (0.95, 2, 2.920),
                                          (0.995, 5, 4.032), (0.9995, 1, 636.619), (0.999, 1, 318.309),
                                          (0.5, 3, 0.0)])
def test_t_quantile_matches_the_printed_table(p, df, table):
    assert t_quantile(p, df) == pytest.approx(table, abs=5e-4, rel=1e-5)


def test_paired_difference_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732
    d = paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert d["mean"] == pytest.approx(2) and d["n"] == 3
    assert d["high"] - d["mean"] == pytest.approx(4.3027 / math.sqrt(3), abs=1e-3)
    assert d["mean"] - d["low"] == pytest.approx(d["high"] - d["mean"])
    one = paired_difference([1.5], [1.0])
    assert one["mean"] == 0.5 and math.isnan(one["low"]) and math.isnan(one["high"])
    assert mean_std([2.0, 4.0]) == (3.0, pytest.approx(math.sqrt(2))) and mean_std([5.0]) == (5.0, 0.0)


def test_errors():
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="0.5 <= p < 1"):
        t_quantile(0.2, 3)
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])
