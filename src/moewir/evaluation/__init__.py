"""Evaluating restorers on paired test sets: scores, tables and comparison figures."""
from .figures import choose_inset, comparison_sheet, save_sheet, stack_sheets
from .report import AVERAGE, aggregate, markdown_table, write_csv, write_json
from .runner import Metric, build_metrics, evaluate, evaluate_tensors, fidelity_metrics, score

__all__ = ["Metric", "build_metrics", "fidelity_metrics", "evaluate", "evaluate_tensors", "score", "aggregate",
           "AVERAGE", "markdown_table", "write_csv", "write_json", "choose_inset", "comparison_sheet", "stack_sheets",
           "save_sheet"]
