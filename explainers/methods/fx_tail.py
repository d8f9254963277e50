"""The part of a network after one layer, as its own module, so ablated activations skip the layers before it.

Ablation-CAM feeds the network one batch per group of ablated channels, but only the target
layer's output changes between them: everything computed before it is the same as in the first
pass. `split_after` traces the model with torch.fx (the target layer kept whole, as one node),
runs it once recording every value, and builds a "tail" graph that takes the target layer's
output plus the cached values the later nodes still read (a residual branch, say), expanded to
the batch. Tracing can fail (data-dependent control flow); callers then fall back to hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import fx


class TailUnavailableError(Exception):
    """The model could not be split after the layer; the message says why."""


@dataclass
class Tail:
    """The network after the target layer, with the first pass's values it needs."""

    module: fx.GraphModule
    frontier: list[Any]  # cached values of nodes before the layer that the tail still reads
    activations: torch.Tensor  # the target layer's output in the first pass (batch of 1)
    logits: torch.Tensor  # the model's output in the first pass

    def __call__(self, layer_output: torch.Tensor) -> torch.Tensor:
        """The model's output when the target layer had produced `layer_output` (any batch size)."""
        batch = layer_output.size(0)
        return self.module(layer_output, *[_expand(value, batch) for value in self.frontier])


def _expand(value: Any, batch: int) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == 1:
        return value.expand(batch, *value.shape[1:])
    return value


class _KeepLayerWhole(fx.Tracer):
    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
        return module is self.layer or super().is_leaf_module(module, qualified_name)


def _trace(model: torch.nn.Module, layer: torch.nn.Module) -> tuple[fx.GraphModule, fx.Node]:
    try:
        graph = _KeepLayerWhole(layer).trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        raise TailUnavailableError(f"torch.fx could not trace the model ({type(exc).__name__}: {exc})") from None
    traced = fx.GraphModule(model, graph)
    names = [name for name, module in model.named_modules() if module is layer]
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target in names]
    if len(calls) != 1:
        raise TailUnavailableError(f"the target layer is called {len(calls)} times in the traced graph, not once")
    return traced, calls[0]


def _depends_on(graph: fx.Graph, sources: set[fx.Node]) -> set[fx.Node]:
    reached = set(sources)
    for node in graph.nodes:
        if any(arg in reached for arg in node.all_input_nodes):
            reached.add(node)
    return reached


def _tail_graph(graph: fx.Graph, layer_node: fx.Node) -> tuple[fx.Graph, list[fx.Node]]:
    """A graph of the nodes downstream of the layer; inputs are the layer output and the frontier."""
    downstream = _depends_on(graph, {layer_node}) - {layer_node}
    placeholders = {n for n in graph.nodes if n.op == "placeholder"}
    input_dependent = _depends_on(graph, placeholders)
    output = next(n for n in graph.nodes if n.op == "output")
    if not any(arg in downstream or arg is layer_node for arg in output.all_input_nodes):
        raise TailUnavailableError("the model's output does not depend on the target layer")
    frontier = [
        n
        for n in graph.nodes
        if n in input_dependent
        and n not in downstream
        and n is not layer_node
        and any(user in downstream for user in n.users)
    ]
    tail = fx.Graph()
    env: dict[fx.Node, fx.Node] = {layer_node: tail.placeholder("layer_output")}
    for index, node in enumerate(frontier):
        env[node] = tail.placeholder(f"cached_{index}")
    for node in graph.nodes:
        if node in env or node.op == "placeholder":
            continue
        if node in downstream or node not in input_dependent:  # constants (get_attr & co) are recomputed
            env[node] = tail.node_copy(node, lambda arg: env[arg])
    return tail, frontier


def split_after(model: torch.nn.Module, layer: torch.nn.Module, batch: torch.Tensor) -> Tail:
    """Run `model` once on `batch` (one image) and return the network after `layer`, checked.

    The check runs the tail on two copies of the recorded activations: both rows must give the
    first pass's output, which catches values the tail wrongly took from a batch of one.
    """
    traced, layer_node = _trace(model, layer)
    tail_graph, frontier_nodes = _tail_graph(traced.graph, layer_node)
    recorder = fx.Interpreter(traced, garbage_collect_values=False)
    with torch.inference_mode():
        logits = recorder.run(batch)
        values = recorder.env
        activations = values[layer_node]
        if not isinstance(activations, torch.Tensor) or not isinstance(logits, torch.Tensor):
            raise TailUnavailableError("the target layer or the model does not return a single tensor")
        module = fx.GraphModule(traced, tail_graph)
        module.graph.eliminate_dead_code()  # constants no downstream node reads
        module.recompile()
        tail = Tail(module, [values[n] for n in frontier_nodes], activations, logits)
        _check(tail)
    return tail


def _check(tail: Tail) -> None:
    try:
        doubled = tail(tail.activations.expand(2, *tail.activations.shape[1:]).contiguous())
    except Exception as exc:
        raise TailUnavailableError(
            f"the split network failed on a batch of two ({type(exc).__name__}: {exc})"
        ) from None
    expected = tail.logits.expand_as(doubled) if doubled.shape[1:] == tail.logits.shape[1:] else None
    scale = float(tail.logits.abs().max()) + 1.0
    if expected is None or float((doubled - expected).abs().max()) > 1e-4 * scale:
        raise TailUnavailableError("the split network does not reproduce the model's output on a batch of two")
