import pytest
import torch

from thermolearn.schedules import as_schedule, betas_from, inverse_decay, linear_decay, sm08_betas, step


def test_sm08_ladder():
    b = sm08_betas()
    assert b.numel() == 14501 and b[0] == 0 and b[-1] == 1
    d = b.diff()
    assert torch.allclose(d[:500], torch.full((500,), 1e-3, dtype=torch.float64))
    assert torch.allclose(d[500:4500], torch.full((4000,), 1e-4, dtype=torch.float64))
    assert torch.allclose(d[4500:], torch.full((10000,), 1e-5, dtype=torch.float64))


def test_epoch_schedules():
    assert [step(0.5, 0.9, at=2)(e) for e in range(4)] == [0.5, 0.5, 0.9, 0.9]
    assert inverse_decay(1.0, 10)(10) == 0.5
    f = linear_decay(1.0, 4)
    assert [round(f(e), 12) for e in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert as_schedule(0.3, "lr")(7) == 0.3
    with pytest.raises(ValueError, match="lr"):
        as_schedule("fast", "lr")


def test_betas_from_validates():
    assert betas_from(5).tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert betas_from("sm08").numel() == 14501
    for bad in ([0.0, 0.5], [0.1, 1.0], [0.0, 0.6, 0.5, 1.0], "fast", 1):
        with pytest.raises(ValueError):
            betas_from(bad)


def test_exponential_growth():
    from thermolearn.schedules import exponential_growth

    g = exponential_growth(0.03, 0.001)
    assert g(0) == 0.03 and g(1000) == pytest.approx(0.03 * 1.001 ** 1000)
    with pytest.raises(ValueError, match="^g1:"):
        exponential_growth(0.1, -1.0)
