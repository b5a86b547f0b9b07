"""torch.distributed helpers that are no-ops in a single process.

The trainer does data-parallel training without ``DistributedDataParallel``: each rank computes the
gradients of its share of the global batch, then ``average_parameter_gradients`` all-reduces every
``.grad`` in one flat buffer. DDP's reducer hooks fire only on ``loss.backward()``, not on
``torch.autograd.grad``, which the gradient-manipulating weightings (PCGrad, GradNorm) use for their
per-task gradients; reducing explicitly after the strategy's backward covers every strategy with one rule.

The exactness argument (docs/distributed.md): every rank's loss is built so that the mean over ranks of
the local objectives is the single-process objective of the global batch (``global_masked_mean``), and
cross-rank batch statistics go through autograd-aware collectives (``global_mean``); then the average of
the ranks' gradients is the single-process gradient, up to floating-point summation order.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the only rank that logs, writes files and shows progress."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """torchrun (and any launcher using the env:// convention) sets these for every worker."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def local_device() -> torch.device:
    """This worker's device: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU (never a fixed cuda:0)."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_from_env(timeout_s: float = 300.0) -> bool:
    """Join the process group torchrun describes in the environment (nccl on GPU, gloo on CPU).

    A single worker (WORLD_SIZE=1) or a plain ``python`` run creates no group at all, so one process
    pays nothing for the distributed code path.

    Args:
        timeout_s: how long a collective may wait for a missing peer before raising, so a rank that
            stalls (rather than dies, which torchrun sees at once) ends the job instead of hanging it.

    Returns:
        True if a process group with more than one rank is now initialised.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1 or dist.is_initialized():
        return is_distributed()
    device = local_device()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=timeout_s)
    rank_, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    # torchrun's agent keeps one TCPStore across restarts, so a restarted group would read the dead workers'
    # gloo addresses from the previous attempt ("Connection refused"); a prefix per attempt keeps them apart.
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size,
                          is_master=not agent_store and rank_ == 0, timeout=timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f"mtl/attempt_{attempt}", store),
                            rank=rank_, world_size=size, timeout=timeout)
    return True


def shutdown() -> None:
    """Leave the process group (if any), so the next run in this interpreter starts clean."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over dim 0 across all ranks' rows, differentiable, so a batch statistic under DDP equals the
    statistic of the global batch that a single process would see."""
    if not is_distributed():
        return x.mean(dim=0)
    total = _AllReduceSum.apply(x.sum(dim=0))
    count = torch.tensor(float(x.shape[0]), dtype=x.dtype, device=x.device)
    dist.all_reduce(count, op=dist.ReduceOp.SUM)
    return total / count.clamp(min=1)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward is again a sum over ranks: each rank's loss depends on every rank's rows
    through the sum, so each rank's rows receive the gradient of all ranks' losses. (Our own few lines rather
    than torch.distributed.nn.functional.all_reduce, which is deprecated.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def global_masked_mean(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-task masked means over the global batch, from each rank's per-task loss sums and label counts.

    Single process: ``sums / counts`` (a task with no labelled row gives exactly 0), the masked mean.

    Several ranks: the value returned is the global mean ``sum_r S_r / sum_r N_r`` on every rank (so
    weightings that use loss values, such as DWA, uncertainty or GradNorm, see the same numbers as one
    process), while its gradient is that of the local contribution ``world_size * S_r / N``. After the
    gradients are averaged over ranks this gives exactly the gradient of the global mean, and, by the chain
    rule, of any function of the losses whose coefficients are the same on every rank.

    Args:
        sums: [T] sum of the per-row loss over this rank's labelled rows (differentiable).
        counts: [T] number of labelled rows on this rank.
    """
    counts = counts.to(sums.dtype)
    if not is_distributed():
        return sums / counts.clamp(min=1)
    totals = torch.stack([sums.detach(), counts])
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    denominator = totals[1].clamp(min=1)
    local = sums * (world_size() / denominator)
    return local + (totals[0] / denominator - local).detach()


def average_gradients(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Average tensors (typically per-task gradients from ``torch.autograd.grad``) over ranks.

    Single process: returns the list unchanged. Several ranks: one flat all_reduce (SUM / world_size), so
    a weighting combines the global batch's per-task gradients, the same ones one process would compute.
    Entries that are None (a parameter a loss does not reach) stay None.

    Args:
        tensors: same shapes and order on every rank.
    """
    if not is_distributed():
        return list(tensors)
    present = [t for t in tensors if t is not None]
    if not present:
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1) for t in present])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    out, offset = [], 0
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        out.append(flat[offset : offset + t.numel()].view_as(t).to(t.dtype))
        offset += t.numel()
    return out


def average_parameter_gradients(parameters: list[torch.nn.Parameter]) -> int:
    """Replace each parameter's ``.grad`` by its mean over ranks (one flat all_reduce); a no-op alone.

    Gradients that a weighting already averaged (the shared parameters' under PCGrad) are equal on every
    rank, so averaging them again leaves them unchanged (exactly for 2 ranks, to rounding otherwise).

    Returns:
        The number of gradient elements reduced (0 in a single process), for the cost accounting.
    """
    if not is_distributed():
        return 0
    with_grad = [p for p in parameters if p.grad is not None]
    averaged = average_gradients([p.grad for p in with_grad])
    for p, g in zip(with_grad, averaged, strict=True):
        p.grad.copy_(g)
    return sum(p.grad.numel() for p in with_grad)


def broadcast_module_state(*modules: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (the seeds agree, but this makes it a fact)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                if tensor.dtype == torch.bool:  # not every backend reduces bools: send them as bytes
                    staged = tensor.data.to(torch.uint8)
                    dist.broadcast(staged, src=0)
                    tensor.data.copy_(staged.bool())
                else:
                    dist.broadcast(tensor.data, src=0)


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (a picklable value between this job's own processes)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
