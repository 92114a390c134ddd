"""The forecast frame's quantile columns: one way to name them and one to read them back."""

import pytest

from salesfusion.data.forecast_frame import quantile_columns, quantile_level, quantile_name


@pytest.mark.parametrize("level", [0.1, 0.5, 0.9, 0.05, 0.975, 1e-05, 0.999])
def test_a_name_reads_back_as_its_level(level):
    assert quantile_level(quantile_name(level)) == level


@pytest.mark.parametrize("column", ["q1", "q0", "q1.5", "qnan", "qinf", "q-0.1", "q 0.1",
                                    "q0.1x", "quantity", "q", "y_pred", "Q0.1"])
def test_other_columns_are_no_quantiles(column):
    assert quantile_level(column) is None


def test_quantile_columns_lowest_first_others_left_out():
    columns = ["item_id", "q0.9", "y_pred", "q0.1", "q0.5", "quantity", "qnan"]
    assert quantile_columns(columns) == ["q0.1", "q0.5", "q0.9"]
    assert quantile_columns(iter(columns)) == ["q0.1", "q0.5", "q0.9"]
