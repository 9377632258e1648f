"""Training logs a person and a plotting script can read: a text log, CSV files and,
when the ``tensorboard`` package is installed, TensorBoard scalars."""
from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from ..data.io import atomic_file

__all__ = ["CsvLog", "TensorBoard", "RunLogs", "init_loggers", "file_logger", "close_logs"]


class CsvLog:
    """Rows keyed by ``iteration``. Opening it at ``start`` drops rows after ``start`` (left by
    an interrupted run), so a resumed run's log reads like one uninterrupted run. The kept rows
    are rewritten atomically (temporary file, then rename) before appending, so a run killed
    again right after resuming loses none of them."""

    def __init__(self, path: Path, columns: list[str], start: int = 0):
        self.path, self.columns = path, columns
        kept: list[list[str]] = []
        if path.is_file() and start > 0:
            with open(path, newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header == columns:
                    kept = [row for row in reader if len(row) == len(columns) and row[0].isdigit()
                            and int(row[0]) <= start]
        with atomic_file(path, "w") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(kept)
        self.file = open(path, "a", newline="")
        self.writer = csv.writer(self.file)

    def write(self, row: dict) -> None:
        self.writer.writerow([_fmt(row.get(c, "")) for c in self.columns])

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class TensorBoard:
    """Scalars to TensorBoard, or nothing when the package is missing (CSV has everything)."""

    def __init__(self, folder: Path, enabled: bool, log: logging.Logger):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
            else:
                self.writer = SummaryWriter(str(folder))

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class RunLogs:
    """The main rank's logs of a run: ``train_log.csv`` (every iteration), ``val_log.csv``
    (every validation) and TensorBoard."""
    train: CsvLog
    val: CsvLog
    board: TensorBoard

    def flush(self) -> None:
        self.train.flush()
        self.val.flush()

    def close(self) -> None:
        self.train.close()
        self.val.close()
        self.board.close()


def init_loggers(folder: Path, tasks: list[str], start: int, tensorboard: bool, log: logging.Logger) -> RunLogs:
    """Open the CSV logs of ``folder`` at iteration ``start`` (rows after it dropped) and
    TensorBoard (when enabled and installed; ``log`` says so when it is not)."""
    columns = (["iteration", "lr", "total"] + [f"loss/{t}" for t in tasks] + [f"weight/{t}" for t in tasks]
               + ["seconds"])
    return RunLogs(CsvLog(folder / "train_log.csv", columns, start),
                   CsvLog(folder / "val_log.csv", ["iteration", "task", "images", "psnr", "ssim"], start),
                   TensorBoard(folder / "tensorboard", tensorboard, log))


def close_logs() -> None:
    """Detach and close the handlers :func:`file_logger` attached."""
    for name in ("moewir.train", "moewir.data"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


def file_logger(path: Path) -> logging.Logger:
    """``moewir.train`` writing timestamped lines to ``path``.

    The data pipeline's messages (``moewir.data``: skipped unreadable pairs) go to the same
    file; warnings of both also go to stderr as ``moewir: warning: ...`` lines.
    """
    close_logs()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("moewir: warning: %(message)s"))
    console.setLevel(logging.WARNING)
    for name in ("moewir.train", "moewir.data"):
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.addHandler(console)
        log.propagate = False
    return logging.getLogger("moewir.train")
