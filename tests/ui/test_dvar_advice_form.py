"""Under "Early stopping" the form warns when DVAR would run at a rate it stops too early at,
and otherwise recommends the published setting that kept more of the best score at the
nearest measured rate (trainer/dvar_advice.py); each goes when its cause is changed."""

from __future__ import annotations

from trainer.config import TrainConfig

from tests.form_pilot import SIZE, app_for, message, ready, type_into


async def test_a_slow_rate_with_dvar_is_warned_and_a_faster_one_is_not(root):
    defaults = TrainConfig(root=str(root), learning_rate="5e-3", scale_lr=False,
                           train_batch_size=4, max_train_steps=1000)
    async with app_for(root, defaults=defaults, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        row = form.rows["early_stopping"]
        assert "--dvar_window 310 --dvar_threshold 0.15" in message(form, "early_stopping")
        assert row.level == "info" and "Measured at 0.005" in row.message
        await type_into(pilot, form, "learning_rate", "5e-4")
        assert "0.0005 per update" in message(form, "early_stopping")
        assert row.level == "warning"
        await type_into(pilot, form, "learning_rate", "3e-3")
        assert row.level == "info" and "Measured at 0.002" in row.message
        await type_into(pilot, form, "dvar_window", "310")
        await type_into(pilot, form, "dvar_threshold", "0.15")
        assert message(form, "early_stopping") == ""  # the recommended setting: nothing to say
