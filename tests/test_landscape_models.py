"""MLP files of thermolearn.landscape: build, save, load, train."""

import pytest
import torch

from thermolearn.errors import ModelFileError
from thermolearn.io import save_tensors
from thermolearn.landscape.models import load_mlp, mlp, save_mlp, train_classifier


def test_mlp_shape_and_seed():
    a, b = mlp([5, 7, 3], "tanh", seed=1), mlp([5, 7, 3], "tanh", seed=1)
    assert [type(m).__name__ for m in a] == ["Linear", "Tanh", "Linear"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, mlp([5, 7, 3], "tanh", seed=2)[0].weight)
    assert a(torch.zeros(4, 5)).shape == (4, 3)


def test_save_load_round_trip(tmp_path):
    model = mlp([4, 6, 6, 2], "erf", seed=0, dtype=torch.float64)
    save_mlp(model, tmp_path / "m.safetensors")
    back = load_mlp(tmp_path / "m.safetensors")
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert back.sizes == [4, 6, 6, 2] and back.activation == "erf"
    assert torch.equal(model(x), back(x))


def test_load_refuses_other_files(tmp_path):
    save_tensors(tmp_path / "r.safetensors", {"W": torch.zeros(2, 2)}, {"kind": "rbm"})
    with pytest.raises(ModelFileError, match="expected a 'mlp'"):
        load_mlp(tmp_path / "r.safetensors")
    save_tensors(tmp_path / "bad.safetensors", {"0.weight": torch.zeros(2, 2)},
                 {"kind": "mlp", "sizes": [3, 2], "activation": "relu"})
    with pytest.raises(ModelFileError, match="not a consistent MLP"):
        load_mlp(tmp_path / "bad.safetensors")


def test_train_classifier_learns_a_separable_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = mlp([2, 16, 2], "relu", seed=0)
    fit = train_classifier(model, x, y, epochs=20, batch_size=20, lr=0.1, seed=0, test=(x, y))
    assert fit.history[0]["step"] == 0 and fit.steps == 20
    assert fit.train_accuracy > 0.95 and fit.test_accuracy == fit.train_accuracy


@pytest.mark.parametrize("call, name", [
    (lambda: mlp([3], "relu"), "sizes"),
    (lambda: mlp([3, 0], "relu"), "sizes"),
    (lambda: mlp([3, 2], "swish"), "activation"),
    (lambda: train_classifier(mlp([2, 2]), torch.zeros(4, 2), torch.zeros(3)), "labels"),
    (lambda: train_classifier(mlp([2, 2]), torch.zeros(4, 2), torch.zeros(4), lr=-1), "lr"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()
