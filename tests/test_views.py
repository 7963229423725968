import numpy as np
import pytest
import torch

from fundiff.engine import views as V
from fundiff.engine.views import NegateView, PermuteView, get_view, view_names
from fundiff.errors import FundiffError

SPECS = ["identity", "flip", "mirror", "rotate_cw", "rotate_ccw", "rotate_180", "negate", "skew", "patch_permute",
         "patch_permute:4,seed=3", "pixel_permute", "jigsaw", "jigsaw:seed=5", "inner_circle", "permute8"]
PERM8 = torch.randperm(64, generator=torch.Generator().manual_seed(7))


def make(spec):
    return PermuteView(PERM8) if spec == "permute8" else get_view(spec)


def sizes(spec):
    if spec in ("patch_permute", "permute8"):
        return [8, 16, 64]  # 28 is not a multiple of 8
    return [8, 16, 28, 64]


CASES = [(s, n) for s in SPECS for n in sizes(s)]


def test_registry_lists_every_view():
    """Every View class in fundiff.engine.views is registered under its own name, and every name builds it."""
    import inspect

    classes = {c for _, c in inspect.getmembers(V, inspect.isclass)
               if issubclass(c, V.View) and c not in (V.View, V.PermutationView) and not c.__name__.startswith("_")}
    assert {V.VIEWS[name] for name in view_names()} == classes
    for name in view_names():
        assert V.VIEWS[name].name == name
        if name != "permute":   # permute needs a file
            assert type(V.get_view(name)) is V.VIEWS[name] and V.get_view(V.get_view(name).spec).spec == V.get_view(name).spec


@pytest.mark.parametrize("spec,n", CASES)
def test_inverse_undoes_view(spec, n):
    v = make(spec)
    x = torch.randn(2, 3, n, n)
    y = v.view(x)
    assert y.shape == x.shape
    assert torch.equal(v.inverse_view(y), x)
    assert torch.equal(v.view(v.inverse_view(x)), x)


@pytest.mark.parametrize("spec,n", [(s, 16 if s in ("jigsaw", "jigsaw:seed=5", "inner_circle") else 8) for s in SPECS])
def test_view_is_orthogonal(spec, n):
    v = make(spec)
    basis = torch.eye(n * n, dtype=torch.float64).view(n * n, 1, n, n)
    a = v.view(basis).reshape(n * n, n * n).T  # column i = view of basis vector i
    assert torch.equal(a.T @ a, torch.eye(n * n, dtype=torch.float64))
    if spec not in ("identity",):
        assert not torch.equal(a, torch.eye(n * n, dtype=torch.float64)), "view should do something"


@pytest.mark.parametrize("spec,n", CASES)
def test_permutation_agrees_with_view(spec, n):
    v = make(spec)
    x = torch.randn(1, 6, n, n)
    p = v.permutation(n, n)
    if spec == "negate":
        assert p is None
        return
    assert p.dtype == torch.long and torch.equal(p.sort().values, torch.arange(n * n))
    assert torch.equal(v.view(x).flatten(-2), x.flatten(-2)[..., p])
    # learned-variance channels move like any image
    assert torch.equal(v.inverse_view(x, variance=True), v.inverse_view(x))


def test_negate_leaves_variance_alone():
    v = NegateView()
    x = torch.randn(2, 6, 8, 8)
    eps, var = x[:, :3], x[:, 3:]
    assert torch.equal(v.view(x), -x)
    assert torch.equal(v.inverse_view(eps), -eps)
    assert torch.equal(v.inverse_view(var, variance=True), var)
    assert torch.equal(v.inverse_view(v.view(eps)), eps)


@pytest.mark.parametrize("spec", SPECS)
def test_view_of_noise_is_noise(spec):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 64, 64)
    y = make(spec).view(x)
    assert abs(float(y.mean())) < 0.02 and abs(float(y.std()) - 1) < 0.02


@pytest.mark.parametrize("spec", ["rotate_cw", "rotate_ccw", "rotate_180", "jigsaw", "inner_circle"])
def test_square_only_views(spec):
    v = get_view(spec)
    with pytest.raises(FundiffError) as err:
        v.view(torch.zeros(1, 3, 8, 16))
    assert str(err.value) == f"view {spec} needs a square image, got 8x16"


def test_non_square_permutation_views():
    x = torch.randn(1, 2, 8, 16)
    for spec in ["flip", "skew", "patch_permute:4", "pixel_permute", "negate"]:
        v = get_view(spec)
        assert torch.equal(v.inverse_view(v.view(x)), x)


def _up4(x):
    return x.repeat_interleave(4, -2).repeat_interleave(4, -1)


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "negate"])
def test_64_to_256_consistency(spec):
    v = make(spec)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(v.view(_up4(x)), _up4(v.view(x)))
    assert torch.equal(v.inverse_view(_up4(x)), _up4(v.inverse_view(x)))


def test_size_scaling_details():
    # 64 px: 1-px cells; 256 px: 4x4 blocks; 28 px: its own 28 x 28 grid
    assert V.reference_grid("x", 64, 64) == (1, 64, 64)
    assert V.reference_grid("x", 256, 256) == (4, 64, 64)
    assert V.reference_grid("x", 28, 28) == (1, 28, 28)
    # inner circle radius 24 at 64 px: pixel centres at distance < 24 from the centre
    m = V.InnerCircleView().mask(64, 64)
    assert m[32, 8] and not m[32, 7] and m[32, 55] and not m[32, 56]
    # skew as visual_anagrams at 64 px: column i rolled by int(1.5 (i - 32))
    x = torch.randn(1, 1, 64, 64)
    y = get_view("skew").view(x)
    for i in (0, 5, 32, 40, 63):
        assert torch.equal(y[..., i], torch.roll(x[..., i], int(1.5 * (i - 32)), dims=-1))


def test_rotation_directions():
    x = torch.arange(4.0).view(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    assert get_view("rotate_cw").view(x).flatten().tolist() == [2, 0, 3, 1]
    assert get_view("rotate_ccw").view(x).flatten().tolist() == [1, 3, 0, 2]
    assert get_view("flip").view(x).flatten().tolist() == [2, 3, 0, 1]     # top to bottom
    assert get_view("mirror").view(x).flatten().tolist() == [1, 0, 3, 2]   # left to right
    from fundiff.engine.animation import squash_frame

    y = torch.rand(1, 3, 6, 6)
    for name in ("flip", "mirror"):   # each mirror animates as a squash through its own axis, ending on the view
        view = get_view(name)
        assert torch.equal(view.frame(y, 0.0), y) and torch.equal(view.frame(y, 1.0), view.view(y))
        assert torch.allclose(view.frame(y, 0.25), squash_frame(y, 0.25, dim=-2 if name == "flip" else -1))
    turned = get_view("flip").frame(y.transpose(-2, -1), 0.3).transpose(-2, -1)   # the mirror is the flip, transposed
    assert torch.allclose(get_view("mirror").frame(y, 0.3), turned, atol=1e-5)


@pytest.mark.parametrize("name", ["patch_permute", "pixel_permute", "jigsaw"])
def test_seeds(name):
    a, b, c = get_view(name), get_view(f"{name}:seed=0"), get_view(f"{name}:seed=1")
    assert torch.equal(a.permutation(64, 64), b.permutation(64, 64))
    assert not torch.equal(a.permutation(64, 64), c.permutation(64, 64))


def test_jigsaw_has_tabs_and_turns_pieces():
    j = get_view("jigsaw")
    lab = j.labels(64)
    counts = torch.bincount(lab.flatten(), minlength=16)
    assert (counts != 256).any() and counts.sum() == 64 * 64  # tabs move pixels between cells
    _, _, turns = j.layout(64, 64)
    assert turns.unique().numel() > 1


def test_patch_permute_moves_whole_patches():
    v = get_view("patch_permute:4")
    p = v.permutation(16, 16).view(16, 16)
    for r in range(0, 16, 4):
        for c in range(0, 16, 4):
            block = p[r:r + 4, c:c + 4]
            assert torch.equal(block - block[0, 0], p[:4, :4] - p[0, 0])


def test_get_view_parsing():
    v = get_view("patch_permute:16")
    assert (v.grid, v.seed) == (16, 0)
    v = get_view(" patch_permute:grid=4, seed=3 ")
    assert (v.grid, v.seed, v.spec) == (4, 3, "patch_permute:grid=4,seed=3")
    assert get_view("skew:2.5").factor == 2.5
    assert get_view("jigsaw:seed=3").seed == 3
    assert get_view("pixel_permute").seed == 0
    assert get_view(get_view("flip")).name == "flip"


@pytest.mark.parametrize("spec,fragment", [
    ("spin", "unknown view 'spin'; known views: identity, flip"),
    ("flip:3", "takes no arguments"),
    ("patch_permute:abc", "grid must be an integer"),
    ("patch_permute:4,5,6", "at most 2 arguments"),
    ("jigsaw:colour=2", "has no argument 'colour'"),
    ("patch_permute:4,grid=4", "given twice"),
    ("permute", "needs a file"),
    ("permute:/nonexistent/perm.npy", "does not exist"),
])
def test_get_view_errors(spec, fragment):
    with pytest.raises(FundiffError) as err:
        get_view(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_patch_grid_must_divide():
    with pytest.raises(FundiffError, match="divisible by 8, got 28x28"):
        get_view("patch_permute").view(torch.zeros(1, 1, 28, 28))


def test_permute_from_file(tmp_path):
    perm = np.random.default_rng(0).permutation(64)
    np.save(tmp_path / "p.npy", perm)
    v = get_view(f"permute:{tmp_path / 'p.npy'}")
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(v.view(x).flatten(-2), x.flatten(-2)[..., torch.from_numpy(perm)])
    assert torch.equal(v.inverse_view(v.view(x)), x)
    with pytest.raises(FundiffError, match="view permute is for 8x8 images"):
        v.view(torch.zeros(1, 1, 12, 12))
    np.save(tmp_path / "bad.npy", np.array([0, 1, 1, 3]))
    with pytest.raises(FundiffError, match=r"not a permutation of range\(4\)"):
        PermuteView.from_file(tmp_path / "bad.npy")
    np.save(tmp_path / "odd.npy", np.arange(10))
    with pytest.raises(FundiffError, match="not a square"):
        PermuteView.from_file(tmp_path / "odd.npy")
    assert PermuteView.from_file(tmp_path / "odd.npy", size=(2, 5)).size == (2, 5)
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(FundiffError, match="cannot read permutation file"):
        PermuteView.from_file(tmp_path / "junk.npy")
    np.save(tmp_path / "2d.npy", np.arange(4).reshape(2, 2))
    with pytest.raises(FundiffError, match="1-D array"):
        PermuteView.from_file(tmp_path / "2d.npy")


def test_involutions_are_the_views_that_undo_themselves():
    from fundiff.engine.views import is_involution

    assert all(is_involution(get_view(v)) for v in ("identity", "flip", "mirror", "rotate_180", "negate", "inner_circle"))
    assert not any(is_involution(get_view(v)) for v in ("rotate_cw", "rotate_ccw", "skew", "jigsaw"))
    assert is_involution(get_view("flip"), (2, 3, 64, 64))
    assert not is_involution(get_view("rotate_180"), (1, 1, 28, 30))   # a turn needs a square image: it does not apply
