"""fundiff's local web UI (``fundiff serve``), built with gradio (``pip install 'fundiff[web]'``).

:func:`build_app` makes the gradio app over one loaded model; :func:`serve` runs it on the loopback
interface.  Importing this package does not import gradio; the first use of either function does.
"""

from __future__ import annotations

__all__ = ["build_app", "serve"]


def build_app(*args, **kwargs):
    """See :func:`fundiff.web.app.build_app`."""
    from fundiff.web.app import build_app as _build_app

    return _build_app(*args, **kwargs)


def serve(*args, **kwargs):
    """See :func:`fundiff.web.app.serve`."""
    from fundiff.web.app import serve as _serve

    return _serve(*args, **kwargs)
