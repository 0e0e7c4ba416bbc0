"""Speed table: per-second-of-speech ratios are ratios of sums; shares of end-to-end time add up to one."""

import pytest

from taste.lm.report import records_frame, speed_table, step_ratio


def rec(system, steps, seconds, lm_s, decode_s=0.0):
    t = {"asr_s": 0.1, "lm_s": lm_s, "decode_s": decode_s, "vocoder_s": 0.2}
    return {"system": system, "prompt_id": "p", "n_words": 10, "lm_steps": steps, "generated_seconds": seconds,
            "units": [1], "timings": {**t, "end_to_end_s": sum(t.values())}}


def test_speed_table_and_step_ratio():
    frame = records_frame([rec("s3_lm", 100, 4.0, 1.0), rec("s3_lm", 50, 1.0, 0.5),
                           rec("taslm_token", 14, 3.0, 0.2, 0.5), rec("taslm_token", 16, 2.0, 0.2, 0.5)])
    table = speed_table(frame)
    assert table.loc["s3_lm", "lm_steps_per_speech_s"] == pytest.approx(150 / 5)
    assert table.loc["taslm_token", "lm_steps_per_speech_s"] == pytest.approx(30 / 5)
    assert table.loc["s3_lm", "lm_s_per_speech_s"] == pytest.approx(1.5 / 5)
    shares = table[[c for c in table.columns if c.startswith("share_")]].sum(axis=1)
    assert shares.tolist() == pytest.approx([1.0, 1.0])
    assert step_ratio(table) == pytest.approx(5.0)
    assert step_ratio(table, fast="taslm_embed") is None
