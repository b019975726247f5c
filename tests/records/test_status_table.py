from ttlaunch.records.status_table import update_status_table

MARKDOWN = """\
# cap_4L_lora_lr_sweep

## All Runs
| Run Name | Status | Job ID | Started | Completed | Notes |
|----------|--------|--------|---------|-----------|-------|
| decoy | - | - | - | - | a table not under a fine-tuning heading |

## Fine-tuning

| Run Name | Status | Job ID | Started | Completed | Notes |
|----------|--------|--------|---------|-----------|-------|
| rank8_lr1e-5 | - | - | - | - | keep this note? no: ours |
| base_model | - | - | - | - | control run, not ours |

Some text the user wrote.
"""


def test_only_the_fine_tuning_table_rows_change():
    rows = {
        "rank8_lr1e-5": ["RUNNING", "12345678", "2025-10-24 00:05:32", "-", "-"],
        "rank16_lr1e-5": ["PENDING", "12345679", "-", "-", "-"],
    }
    updated = update_status_table(MARKDOWN, rows)
    lines = updated.split("\n")
    assert "| rank8_lr1e-5 | RUNNING | 12345678 | 2025-10-24 00:05:32 | - | - |" in lines
    assert "| base_model | - | - | - | - | control run, not ours |" in lines
    assert lines.index("| rank16_lr1e-5 | PENDING | 12345679 | - | - | - |") == lines.index("| base_model | - | - | - | - | control run, not ours |") + 1
    assert "| decoy | - | - | - | - | a table not under a fine-tuning heading |" in lines
    assert updated.endswith("Some text the user wrote.\n")
    # Everything outside the table is byte for byte the same.
    assert [l for l in lines if "rank" not in l] == [l for l in MARKDOWN.split("\n") if "rank" not in l]


def test_no_table_no_change():
    assert update_status_table("# notes\n\nnothing here\n", {"a": ["-"] * 5}) is None
