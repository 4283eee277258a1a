"""Bundled model files: ``siammask_mnv2_default.pth`` and its ``MODEL_CARD.md``.

Use ``siammask_ros.model.default_weights_path()`` to locate the checkpoint.
"""
