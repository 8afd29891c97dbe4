import math
import pickle

import numpy as np
import pytest
import torch

from thermolearn.schedules import (
    Constant,
    Geometric,
    InverseDecay,
    LinearDecay,
    Step,
    Table,
    as_schedule,
    betas_from,
    describe,
    schedule_values,
    sm08_betas,
)


def test_sm08_ladder():
    b = sm08_betas()
    assert b.numel() == 14501 and b[0] == 0 and b[-1] == 1
    d = b.diff()
    assert torch.allclose(d[:500], torch.full((500,), 1e-3, dtype=torch.float64))
    assert torch.allclose(d[500:4500], torch.full((4000,), 1e-4, dtype=torch.float64))
    assert torch.allclose(d[4500:], torch.full((10000,), 1e-5, dtype=torch.float64))


def test_schedule_values_by_hand():
    assert [Step(0.5, 0.9, at=2)(e) for e in range(4)] == [0.5, 0.5, 0.9, 0.9]
    assert InverseDecay(1.0, 10)(10) == 0.5
    f = LinearDecay(1.0, 4)
    assert [round(f(e), 12) for e in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert [LinearDecay(0.05, 2, end=0.07)(t) for t in (0, 1, 5)] == pytest.approx([0.05, 0.06, 0.07])
    assert Table([3, 2, 1])(0) == 3 and Table([3, 2, 1])(10) == 1
    assert Constant(0.3)(100) == 0.3
    np.testing.assert_allclose(schedule_values(Table([1, 2]), 3), [1, 2, 2])
    np.testing.assert_allclose(schedule_values(0.5, 2), [0.5, 0.5])


def test_geometric_and_cap():
    g = Geometric(0.03, 1.001)
    assert g(0) == 0.03 and g(1000) == pytest.approx(0.03 * 1.001 ** 1000)
    assert Geometric(1.0, 10.0)(100) == 1e12          # capped, no overflow
    assert Geometric(0.0, 2.0)(5) == 0.0
    with pytest.raises(ValueError, match="^rate:"):
        Geometric(0.1, 0.0)
    with pytest.raises(ValueError, match="^start:"):
        Geometric(-0.1, 1.1)


def test_as_schedule_checks_numbers_and_keeps_objects():
    assert as_schedule(0.3, "lr")(7) == 0.3
    s = LinearDecay(1.0, 5)
    assert as_schedule(s, "lr") is s
    for bad in ("fast", None, True, [0.1]):
        with pytest.raises(ValueError, match="^lr:"):
            as_schedule(bad, "lr")
    with pytest.raises(ValueError, match="^lr:"):
        as_schedule(-1.0, "lr", minimum=0.0)
    with pytest.raises(ValueError, match="^lr:"):
        as_schedule(math.nan, "lr")


def test_schedules_pickle_compare_and_describe():
    for s in (Constant(1.0), LinearDecay(0.1, 3), Step(0.5, 0.9, 5), InverseDecay(1.0, 2.0),
              Geometric(0.2, 1.01), Table([1.0, 2.0])):
        t = pickle.loads(pickle.dumps(s))
        assert t == s and [t(i) for i in range(4)] == [s(i) for i in range(4)]
    assert describe(0.01) == 0.01 and describe(Constant(0.5)) == 0.5
    assert describe(LinearDecay(0.1, 3)) == describe(LinearDecay(0.1, 3)) != describe(LinearDecay(0.2, 3))
    assert describe(lambda t: 1.0) is None


def test_betas_from_validates():
    assert betas_from(5).tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert betas_from("sm08").numel() == 14501
    for bad in ([0.0, 0.5], [0.1, 1.0], [0.0, 0.6, 0.5, 1.0], "fast", 1):
        with pytest.raises(ValueError):
            betas_from(bad)
