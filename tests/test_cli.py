"""The command line as a whole; Markdown tables."""
from __future__ import annotations

import pytest

from moewir.tables import markdown_header, markdown_row, markdown_table


def test_markdown_table():
    assert markdown_table(["task", "PSNR", "n"], [["rain", "31.20", 3], ["snow", "-", 0]], align="lr") == (
        "| task | PSNR | n |\n|---|---:|---|\n| rain | 31.20 | 3 |\n| snow | - | 0 |")
    assert markdown_header(["a", "b", "c"], align="rcl") == "| a | b | c |\n|---:|:---:|---|"
    assert markdown_row(["x", ""]) == "| x |  |"
    assert markdown_table(["only"], []) == "| only |\n|---|"
    with pytest.raises(ValueError, match="align"):
        markdown_header(["a"], align="rr")
    with pytest.raises(ValueError, match="align"):
        markdown_header(["a", "b"], align="x")
