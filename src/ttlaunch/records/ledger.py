"""A sweep's records on disk, written together: the event log, `jobs.json` and the
Fine-tuning status table of the experiment's experiment_summary.md (when it has one).

The launcher writes submissions here, the monitor writes what it observes; a re-launch or
`python -m ttlaunch.status` opens the same ledger from the sweep dir alone.
"""

from __future__ import annotations

from pathlib import Path

from ttlaunch.base.errors import NotASweep
from ttlaunch.base.files import write_atomically
from ttlaunch.records.event_log import EVENT_LOG_NAME, EventLog
from ttlaunch.records.jobs_file import STATE_FILE_NAME, JobKind, SweepState, load_state, save_state
from ttlaunch.records.status_table import row_cells, update_status_table


class Ledger:
    def __init__(self, sweep_dir: Path, state: SweepState) -> None:
        self.sweep_dir = sweep_dir
        self.state = state
        self.events = EventLog(
            sweep_dir / EVENT_LOG_NAME, copy=Path(state.experiment_log) if state.experiment_log else None
        )

    @classmethod
    def open(cls, sweep_dir: Path, experiment: str) -> "Ledger":
        """The sweep's ledger; a fresh state when the sweep has none yet."""
        return cls(sweep_dir, load_state(sweep_dir / STATE_FILE_NAME, experiment, sweep_dir))

    @classmethod
    def existing(cls, sweep_dir: Path) -> "Ledger":
        """The ledger of a sweep that has been launched (NotASweep otherwise)."""
        path = sweep_dir / STATE_FILE_NAME
        if not path.is_file():
            raise NotASweep(sweep_dir, path)
        return cls(sweep_dir, load_state(path, "", sweep_dir))

    @property
    def state_path(self) -> Path:
        return self.sweep_dir / STATE_FILE_NAME

    def save(self) -> None:
        """jobs.json, then the status table: both atomically."""
        self.save_state()
        self.update_status_table()

    def save_state(self) -> None:
        save_state(self.state_path, self.state)

    def update_status_table(self) -> None:
        """The experiment_summary.md's Fine-tuning table follows the jobs (when it has one)."""
        if self.state.status_table is None:
            return
        markdown = Path(self.state.status_table)
        if not markdown.is_file():
            return
        text = markdown.read_text(encoding="utf-8")
        rows = {name: row_cells(record) for name, record in self.state.jobs.items() if record.kind is JobKind.TRAINING}
        updated = update_status_table(text, rows)
        if updated is not None and updated != text:
            write_atomically(markdown, updated)
