"""Tests for thermolearn.deep.DistributedReplica: one replica per process (gloo on loopback)
against the single-process Replicated with the same initialisation and per-replica batches."""

import copy

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from thermolearn.deep import DistributedReplica, Replicated, launch
from thermolearn.errors import TrainingDiverged
from thermolearn.schedules import Geometric

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

Y, STEPS, N, D_IN, HID, K = 2, 4, 8, 5, 7, 3
LR, MOMENTUM = 0.1, 0.9
GAMMA = Geometric(0.3, 1 + 0.5)


def net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D_IN, HID), nn.Tanh(), nn.BatchNorm1d(HID), nn.Linear(HID, K)).double()


def optimizer(params):
    return torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=1e-3)


def data():
    g = torch.Generator().manual_seed(1)
    return [[(torch.randn(N, D_IN, generator=g, dtype=torch.float64), torch.randint(0, K, (N,), generator=g))
             for _ in range(Y)] for _ in range(STEPS)]


def worker(rank, world, batches):
    """Each process: train its replica with both couplings, then try a NaN step."""
    torch.set_num_threads(1)
    out = {}
    for coupling in ("mean", "center"):
        model = net(100 + rank)
        rep = DistributedReplica(model, gamma=GAMMA, coupling=coupling, optimizer=optimizer)
        losses = [rep.step(step[rank], F.cross_entropy) for step in batches]
        out[coupling] = {"replica": copy.deepcopy(model.state_dict()), "center": rep.center.state_dict(),
                         "losses": losses, "distances": rep.distances()}
    # a NaN in rank 1's batch: every rank raises, nothing changes
    before = copy.deepcopy(model.state_dict())
    x, t = batches[0][rank]
    x = x.clone()
    if rank == 1:
        x[0, 0] = float("nan")
    try:
        rep.step((x, t), F.cross_entropy)
        out["raised"] = False
    except TrainingDiverged:
        out["raised"] = True
    out["unchanged"] = all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    out["steps"] = rep.steps
    return out


def test_two_processes_equal_single_process_replicated():
    batches = data()
    reference = {}
    for coupling in ("mean", "center"):   # built first: the forked workers inherit torch.optim's imports
        starts = iter([net(100), net(101)]).__next__   # the factory hands out the two starts
        rep = Replicated(starts, Y, coupling=coupling, gamma=GAMMA, optimizer=optimizer)
        losses = [rep.step(step, F.cross_entropy) for step in batches]
        reference[coupling] = (rep, losses)
    results = launch(worker, Y, (batches,), backend="gloo")
    for coupling, (rep, losses) in reference.items():
        center = rep.center.state_dict()
        for rank, res in enumerate(results):
            got = res[coupling]
            assert got["losses"] == pytest.approx(losses, abs=1e-12)
            for name, value in got["replica"].items():
                want = (rep.stacked[name][rank] if name in rep.stacked else rep.stacked_buffers[name][rank])
                torch.testing.assert_close(value, want.detach(), atol=1e-10, rtol=0)
            for name, value in got["center"].items():
                torch.testing.assert_close(value, center[name], atol=1e-10, rtol=0)
            d = rep.distances()
            torch.testing.assert_close(got["distances"]["to_center"], d["to_center"], atol=1e-10, rtol=0)
            assert got["distances"]["pairwise"] == pytest.approx(d["pairwise"], rel=1e-10)
        # the replicas moved apart from their start and are pulled together: a real check
        assert not torch.allclose(results[0][coupling]["replica"]["0.weight"],
                                  results[1][coupling]["replica"]["0.weight"])
    for res in results:
        assert res["raised"] and res["unchanged"] and res["steps"] == STEPS


def test_needs_a_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(RuntimeError, match="process group"):
        DistributedReplica(net(0))
