"""How a training run shows its progress: a bar on a terminal, plain lines in a log.

On a terminal (stderr is a TTY) or in a notebook it is a tqdm bar with the epoch, loss and images/s.  Anywhere else
(``> train.log 2>&1``, ``nohup``, CI) a bar is thousands of carriage-return updates on one line, so
the run writes one plain line instead at each epoch end and at most every ``every_s`` seconds:

    flow matching: step 936/4680 (20%), epoch 2/10, loss 0.0912, 348 images/s, 2:41 elapsed, about 10:46 left
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainingProgress:
    """``update`` after every step; ``close`` at the end.  ``enabled=False`` shows nothing."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True, stream: TextIO | None = None,
                 every_s: float = 60.0):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.desc, self.every_s = total, desc, every_s
        self.enabled = enabled
        in_notebook = _in_notebook_kernel()  # tqdm.auto draws a widget there
        self.interactive = enabled and (in_notebook or bool(getattr(self.stream, "isatty", lambda: False)()))
        self.started = self.last_line = time.monotonic()
        self.first_step = initial
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, leave=True,
                        file=self.stream, disable=not self.interactive)

    def update(self, step: int, epoch: int, epochs: int, loss: float, images_per_s: float, epoch_end: bool = False) -> None:
        """``step`` steps done (of ``total``), in epoch ``epoch`` (1-based) of ``epochs``."""
        if not self.enabled:
            return
        if self.interactive:
            self.bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}", refresh=False)
            self.bar.update(step - self.bar.n)
            return
        now = time.monotonic()
        if not (epoch_end or step == self.total or now - self.last_line >= self.every_s):
            return
        self.last_line = now
        elapsed, done = now - self.started, step - self.first_step
        left = f", about {_clock(elapsed / done * (self.total - step))} left" if 0 < done and step < self.total else ""
        print(f"{self.desc}: step {step}/{self.total} ({100 * step // max(self.total, 1)}%), epoch {epoch}/{epochs}, "
              f"loss {loss:.4f}, {images_per_s:.0f} images/s, {_clock(elapsed)} elapsed{left}",
              file=self.stream, flush=True)

    def close(self) -> None:
        self.bar.close()


def _in_notebook_kernel() -> bool:
    """Whether this process is a running Jupyter kernel (not merely one that imported ipykernel, as nbclient does)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None
