import torch

import thermolearn._random as R
from thermolearn._random import BernoulliSampler


def test_samples_have_the_right_law_and_streams_are_reproducible(monkeypatch):
    p = torch.rand(300, 400, generator=torch.Generator().manual_seed(0))
    x = BernoulliSampler(7).sample(p)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    # E[x] = p and Var = p(1-p): check both over 120,000 draws
    assert abs(float((x - p).mean())) < 0.005
    assert abs(float(((x - p) ** 2).mean() - (p * (1 - p)).mean())) < 0.005
    assert torch.equal(BernoulliSampler(7).sample(p), x)
    assert not torch.equal(BernoulliSampler(8).sample(p), x)
    monkeypatch.setattr(R, "PARALLEL_MIN_SIZE", 10**12)          # serial kernel: same streams
    assert torch.equal(BernoulliSampler(7).sample(p), x)


def test_state_round_trip_and_float64_path():
    s = BernoulliSampler(3)
    p = torch.rand(50, 40)
    state = s.get_state()
    a = s.sample(p)
    s.set_state(state)
    assert torch.equal(s.sample(p), a)
    y = s.sample(p.double())
    assert y.dtype == torch.float64 and abs(float((y - p.double()).mean())) < 0.03
