"""The Fine-tuning status table of an experiment's experiment_summary.md.

    | Run Name | Status | Job ID | Started | Completed | Notes |

Only that table's rows change: rows of this sweep's runs are updated, missing ones appended,
every other line of the file is kept as it is. (experiment_summary.yaml is never written.)
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler.states import JobState

MARKDOWN_NAME = "experiment_summary.md"
HEADER = ("Run Name", "Status", "Job ID", "Started", "Completed", "Notes")


def _cells(line: str) -> list[str] | None:
    stripped = line.strip()
    if not (stripped.startswith("|") and stripped.endswith("|")):
        return None
    return [cell.strip() for cell in stripped[1:-1].split("|")]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def _find_table(lines: list[str]) -> tuple[int, int] | None:
    """(first row index, end index) of the status table's body, preferring one under a
    heading that mentions fine-tuning."""
    candidates = []
    heading = ""
    for index, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            heading = line.lower()
        cells = _cells(line)
        if cells and tuple(cells) == HEADER and index + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]+\|", lines[index + 1].strip()):
            end = index + 2
            while end < len(lines) and _cells(lines[end]) is not None:
                end += 1
            candidates.append((re.search(r"fine-?tun", heading) is not None, index + 2, end))
    if not candidates:
        return None
    preferred = [c for c in candidates if c[0]] or candidates
    return preferred[0][1], preferred[0][2]


def edited_header(text: str) -> tuple[int, str] | None:
    """(line number, header) of a status table whose header was edited, so that ttlaunch
    would no longer recognise it: a table under a fine-tuning heading, or one sharing
    columns with ours, when no table has our header. None when there is nothing to say."""
    lines = text.split("\n")
    if _find_table(lines) is not None:
        return None
    heading = ""
    for index, line in enumerate(lines[:-1]):
        if line.lstrip().startswith("#"):
            heading = line.lower()
        cells = _cells(line)
        if not cells or re.fullmatch(r"\|[\s:|-]+\|", lines[index + 1].strip()) is None:
            continue
        if re.search(r"fine-?tun", heading) or len(set(cells) & set(HEADER)) >= 2:
            return index + 1, line.strip()
    return None


def row_cells(record: JobRecord) -> list[str]:
    """Status, Job ID, Started, Completed, Notes of one job."""
    if record.error:
        notes = record.error
    elif record.status is JobState.PRUNED:
        notes = f"pruned at rung {record.pruned_at}: behind the others"
    elif record.exit_code and record.status not in (JobState.COMPLETED, JobState.PENDING, JobState.RUNNING):
        notes = f"exit code {record.exit_code}"
    else:
        notes = "-"
    return [record.status.value, record.job_id or "-", record.started or "-", record.completed or "-", notes]


def update_status_table(text: str, rows: Mapping[str, Sequence[str]]) -> str | None:
    """`text` with the table's rows for `rows` (run name -> the five other cells) replaced or
    appended; None when the file has no such table."""
    lines = text.split("\n")
    found = _find_table(lines)
    if found is None:
        return None
    start, end = found
    body = lines[start:end]
    remaining = dict(rows)
    for offset, line in enumerate(body):
        cells = _cells(line)
        if cells and cells[0] in remaining:
            body[offset] = _row([cells[0], *remaining.pop(cells[0])])
    body += [_row([name, *cells]) for name, cells in remaining.items()]
    return "\n".join(lines[:start] + body + lines[end:])
