"""A hook-free copy of the model, BatchNorm folded into the convolutions, for the heavy methods' many passes.

Score-CAM runs the model once per activation channel (2048 times for a ResNet50) and LIME once per
sample, on inputs nobody hooks. Folding each eval-mode BatchNorm into the convolution before it
(torch.fx's `fuse`) drops one memory pass per layer, and channels-last weights suit oneDNN and
cuDNN: on a 2-core CPU a ResNet18 pass takes ~22 ms instead of ~26 ms. The outputs equal the
original's up to float rounding (~1e-6 relative); the benchmark states the maps' difference.

Whatever hooks or swaps layers (Grad-CAM, the activations pass, Ablation-CAM) keeps using the
original module: in the traced copy, `layer4` is no longer a module that runs.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import fx
from torch.fx.experimental.optimization import fuse

log = logging.getLogger(__name__)


def fold_for_inference(module: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy with BatchNorm folded in, or `module` itself where it cannot be traced.

    The copy is made here, on the module's device, so that ZeroGPU (which moves what exists at
    start-up) and `.to(device)` callers see it beside the original.
    """
    if module.training:
        return module  # folding uses the running statistics, so it is only right in eval mode
    try:
        folded = fuse(module)  # deep-copies; the original keeps its hooks-ready layers
    except Exception as error:  # a model torch.fx cannot trace (data-dependent control flow, ...)
        log.info("BatchNorm folding skipped (%s: %s); the model is used as it is.", type(error).__name__, error)
        return module
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    with contextlib.suppress(RuntimeError):  # a parameter of another rank (a planted test net): default layout
        folded = folded.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
    return folded.eval()


def features_and_logits(folded: torch.nn.Module, pool: str = "avgpool") -> fx.GraphModule | None:
    """A view of the folded model that returns (the feature maps entering `pool`, the logits) from one pass.

    For torchvision ResNets these are layer4's output, the CAMs' default layer: Score-CAM and
    Ablation-CAM read them without a hook, through the faster folded network (on a GPU a batch-1
    pass is launch-bound, so fewer layers is what counts). Parameters are shared with `folded`;
    None where the model was not traced or has no such pooling call.
    """
    if not isinstance(folded, fx.GraphModule):
        return None
    pooling = [node for node in folded.graph.nodes if node.op == "call_module" and node.target == pool]
    if len(pooling) != 1:
        return None
    graph = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    logits = graph.graph_copy(folded.graph, copies)
    graph.output((copies[pooling[0].args[0]], logits))
    return fx.GraphModule(folded, graph).eval()
