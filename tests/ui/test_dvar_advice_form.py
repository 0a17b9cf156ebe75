"""The form warns under "Early stopping" when DVAR would run at a rate it stops too early at
(trainer/dvar_advice.py), and the warning goes when the rate is raised."""

from __future__ import annotations

from trainer.config import TrainConfig

from tests.form_pilot import SIZE, app_for, message, ready, type_into


async def test_a_slow_rate_with_dvar_is_warned_and_a_faster_one_is_not(root):
    defaults = TrainConfig(root=str(root), learning_rate="5e-3", scale_lr=False,
                           train_batch_size=4, max_train_steps=1000)
    async with app_for(root, defaults=defaults, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert message(form, "early_stopping") == ""
        await type_into(pilot, form, "learning_rate", "5e-4")
        assert "0.0005 per update" in message(form, "early_stopping")
        await type_into(pilot, form, "learning_rate", "3e-3")
        assert message(form, "early_stopping") == ""
