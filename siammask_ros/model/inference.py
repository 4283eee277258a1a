"""Inference-only rewrites of a loaded network: batch norm folded into the convolutions,
channels-last weights.

Both keep the function the network computes (up to float rounding, about 1e-5 relative
here) and make a CPU tracking step markedly cheaper: eval-mode batch norm is an affine map
that costs a full pass over every activation, and oneDNN's convolutions, the depthwise
ones of MobileNetV2 above all, run faster on NHWC activations. Tracker inputs are
already NHWC in memory (an ``HxWx3`` crop viewed as ``1x3xHxW``), so no copy is needed.

The rewritten network has no ``BatchNorm2d`` modules left, so its ``state_dict`` no longer
has the checkpoint names: load weights first, rewrite after, and never train it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

if TYPE_CHECKING:
    from .siammask import SiamMask

__all__ = ["fold_batchnorm", "fold_traced_batchnorm", "optimize_for_inference"]


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every ``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential``
    into that convolution, in place; the batch norm becomes ``nn.Identity``.

    A Sequential's order is its data flow, so no tracing is needed: this covers the neck
    and the heads, and MobileNetV2. Pairs wired in ``forward`` code (a ResNet
    bottleneck's ``bn1(conv1(x))``) need ``fold_traced_batchnorm``.
    Returns the number of pairs folded.

    Raises:
        RuntimeError: the module is in training mode (running statistics still change).
    """
    if module.training:
        raise RuntimeError("fold_batchnorm needs a module in eval mode: call .eval() first")
    folded = 0
    for sequential in module.modules():
        # Only the plain Sequential forward guarantees that child order is data flow.
        if not isinstance(sequential, nn.Sequential) or type(sequential).forward is not nn.Sequential.forward:
            continue
        children = list(sequential.named_children())
        for (conv_name, conv), (norm_name, norm) in zip(children, children[1:]):
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.track_running_stats:
                setattr(sequential, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(sequential, norm_name, nn.Identity())
                folded += 1
    return folded


def fold_traced_batchnorm(module: nn.Module) -> fx.GraphModule:
    """``module`` traced with ``torch.fx``, with every ``BatchNorm2d`` whose input is the
    output of a ``Conv2d`` used nowhere else folded into that convolution.

    Found from the data flow, so pairs wired in ``forward`` code (a ResNet bottleneck's
    ``bn1(conv1(x))``) are covered. The result has the same submodule names and outputs;
    the folded convolutions replace the originals in ``module`` too.

    Raises:
        RuntimeError: the module is in training mode.
    """
    if module.training:
        raise RuntimeError("fold_traced_batchnorm needs a module in eval mode: call .eval() first")
    traced = fx.symbolic_trace(module)
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or type(modules[node.target]) is not nn.BatchNorm2d:
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        conv = modules[source.target]
        if type(conv) is not nn.Conv2d:
            continue
        parent_name, _, attr = source.target.rpartition(".")
        setattr(traced.get_submodule(parent_name), attr, fuse_conv_bn_eval(conv, modules[node.target]))
        node.replace_all_uses_with(source)
        traced.graph.erase_node(node)
    traced.graph.lint()
    traced.recompile()
    traced.delete_all_unused_submodules()
    return traced


def optimize_for_inference(model: SiamMask, channels_last: bool = True) -> SiamMask:
    """Put ``model`` in eval mode, fold its batch norms and (by default) store its weights
    channels-last, in place; returns ``model``.

    The backbone is replaced by its traced, folded version (``fold_traced_batchnorm``);
    the neck and heads are folded as Sequentials.

    Channels-last is the faster layout for oneDNN on the CPU and for cuDNN's tensor-core
    kernels on the GPU; ``channels_last=False`` keeps the default layout.
    """
    model.eval()
    model.backbone = fold_traced_batchnorm(model.backbone)
    fold_batchnorm(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model
