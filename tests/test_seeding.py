import pytest
import torch

from thermolearn.seeding import as_generator, check_seed, spawn_seeds


def test_int_seed_is_a_manually_seeded_generator():
    a = torch.rand(5, generator=as_generator(7))
    b = torch.rand(5, generator=as_generator(torch.Generator().manual_seed(7)))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(3)
    assert as_generator(g) is g


def test_spawned_seeds_are_prefix_stable_and_reproducible():
    assert spawn_seeds(5, 3) == spawn_seeds(5, 8)[:3]
    assert spawn_seeds(5, 4) == spawn_seeds(torch.Generator().manual_seed(5), 4)
    assert len(set(spawn_seeds(0, 100))) == 100
    assert spawn_seeds(None, 2) != spawn_seeds(None, 2)


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, "3", True])
def test_bad_seeds_name_the_argument(bad):
    with pytest.raises(ValueError, match="^seed:"):
        check_seed(bad)
    with pytest.raises(ValueError, match="^seed:"):
        as_generator(bad)
