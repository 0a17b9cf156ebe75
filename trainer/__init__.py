"""The ti-tui training engine: no UI imports, usable as a library.

    from trainer import TrainConfig, train
    result = train(TrainConfig(...), emit=events.append)

`import trainer` stays light (no torch) so the CLI and the pure modules start fast; `train`
loads the heavy machinery on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.loop import RunResult, train

__all__ = ["TrainConfig", "train", "RunResult"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from trainer.config import TrainConfig

        return TrainConfig
    if name in ("train", "RunResult"):
        from trainer import loop

        return getattr(loop, name)
    raise AttributeError(name)
