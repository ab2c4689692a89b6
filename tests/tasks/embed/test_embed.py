"""The Embedder estimator, sn.embed and the preprocessing to 96 px inputs."""
import numpy as np
import pytest

from scopenet.errors import InputError
from scopenet.image.micrograph import Axis, Micrograph
from scopenet.tasks.embed import Embedder
from scopenet.image.tta import dihedral
from scopenet.tasks.embed.preprocess import (canonical_view, canonicalize, resize_square, thumbnail, tiles,
                                              to_inputs)


def test_area_resize_preserves_block_means():
    a = np.arange(36.0).reshape(6, 6)
    r = resize_square(a, 3)
    np.testing.assert_allclose(r, a.reshape(3, 2, 3, 2).mean((1, 3)))
    # non-integer factor: the mean is preserved, and a constant stays constant
    b = np.random.default_rng(0).random((100, 100))
    assert resize_square(b, 96).mean() == pytest.approx(b.mean(), rel=1e-6)
    np.testing.assert_allclose(resize_square(np.full((7, 9), 3.0), 96), 3.0, rtol=1e-6)
    # a non-square image: its central square
    c = np.zeros((10, 30))
    c[:, 10:20] = 1
    np.testing.assert_allclose(resize_square(c, 5), 1.0)


def test_tiles_cover_the_image_and_inputs_are_unit_scaled():
    a = np.random.default_rng(1).random((200, 100)) * 50 + 7
    t = tiles(a, 96)
    assert t.shape == (3 * 2, 96, 96)
    np.testing.assert_allclose(t[-1], a[104:200, 4:100], rtol=1e-6)  # the last tiles touch the far edges
    x = to_inputs(a, 96, "tiles")
    assert x.min() == 0 and x.max() == 1 and x.shape == t.shape
    assert to_inputs(a[:50, :50], 96, "tiles").shape == (1, 96, 96)  # smaller than a tile: resized
    th = thumbnail(a, 64)
    assert th.dtype == np.uint8 and th.shape == (64, 64)
    with pytest.raises(InputError):
        to_inputs(a, 96, "stretch")
    with pytest.raises(InputError):
        resize_square(np.zeros(5), 96)


def test_predict_shapes_and_batch_independence(tiny_model, images):
    est = Embedder.load(tiny_model)
    stack = np.stack(images)
    codes = est.predict(stack)
    assert codes.shape == (6, 8) and codes.dtype == np.float32
    for i, im in enumerate(images):  # each image alone gets the code it has in the batch
        np.testing.assert_allclose(est.predict(im)[0], codes[i], rtol=1e-5, atol=1e-5)
    est.config.batch_size = 2  # other batch boundaries: same codes
    np.testing.assert_allclose(est.predict(stack), codes, rtol=1e-5, atol=1e-5)
    assert est.predict([images[0], stack[1:3]]).shape == (3, 8)
    mg = Micrograph(stack[:2], axes=[Axis("frame", 2, 1.0), Axis("y", 64, 1e-10), Axis("x", 64, 1e-10)])
    np.testing.assert_allclose(est.predict(mg), codes[:2], rtol=1e-5, atol=1e-5)
    mu, sigma = est.encode(stack)
    assert (sigma >= 0).all()
    np.testing.assert_allclose(mu, codes, rtol=1e-5, atol=1e-5)


def test_rescaling_intensity_leaves_the_code_unchanged(tiny_model, images):
    est = Embedder.load(tiny_model)
    np.testing.assert_allclose(est.predict(images[2] * 1000 - 3), est.predict(images[2]), rtol=1e-4, atol=1e-4)


def test_tta8_codes_are_invariant_to_rotations_and_flips(tiny_model, images):
    est = Embedder.load(tiny_model)
    a = images[3]
    ref = est.predict(a, tta=8)
    for b in (np.rot90(a), np.rot90(a, 2), a[:, ::-1]):
        np.testing.assert_allclose(est.predict(np.ascontiguousarray(b), tta=8), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="views"):
        est.predict(a, tta=9)


def test_tiles_mode_averages_tile_codes(tiny_model):
    est = Embedder.load(tiny_model)
    a = np.random.default_rng(2).random((64, 96)).astype(np.float32)
    per_tile = est.encode_inputs(to_inputs(a, 32, "tiles"))[0]
    assert len(per_tile) == 6
    np.testing.assert_allclose(est.predict(a, fit="tiles")[0], per_tile.mean(0), rtol=1e-5, atol=1e-6)


def test_decode_and_errors(tiny_model):
    est = Embedder.load(tiny_model)
    assert est.decode(np.zeros(8)).shape == (1, 32, 32)
    with pytest.raises(InputError, match="columns"):
        est.decode(np.zeros((2, 5)))
    for bad in ("x.png", None, [], np.zeros((2, 2, 2, 2)), np.array([["a"]])):
        with pytest.raises(InputError):
            est.predict(bad)


def test_sn_embed_with_the_shipped_model():
    import scopenet as sn
    from scopenet.weights import list_models

    if "embed-default" not in {m.name for m in list_models()}:
        pytest.skip("embed-default is not installed")
    rng = np.random.default_rng(0)
    codes = sn.embed([rng.random((130, 200)), rng.random((96, 96))])
    assert codes.shape == (2, 64) and np.isfinite(codes).all()


@pytest.mark.parametrize("size", [32, 33, 96])
def test_canonical_view_is_the_same_for_all_8_transforms(size):
    rng = np.random.default_rng(size)
    x = rng.random((size, size)).cumsum(0) + rng.random((size, size))
    views = np.stack([dihedral(x, j) for j in range(8)])
    k = canonical_view(views)
    assert k.shape == (8,) and len(set(k.tolist())) == 8  # each view needs its own turn to get there
    canon, k2 = canonicalize(views)
    np.testing.assert_array_equal(k2, k)
    for c in canon:
        np.testing.assert_array_equal(c, canon[0])
    assert int(canonical_view(views[3])) == k[3]  # one 2-D input: a scalar index
    # an intensity offset and scale do not change the choice
    np.testing.assert_array_equal(canonical_view(views * 3.0 + 100.0), k)
    with pytest.raises(InputError, match="square"):
        canonical_view(np.zeros((2, 8, 9)))


def test_default_codes_are_invariant_to_all_8_transforms(tiny_model):
    est = Embedder.load(tiny_model)
    assert est.config.orient == "canonical"
    rng = np.random.default_rng(5)
    a = (rng.random((32, 32)).cumsum(1) + rng.random((32, 32))).astype(np.float32)
    codes = np.stack([est.predict(dihedral(a, j))[0] for j in range(8)])
    np.testing.assert_allclose(codes, np.broadcast_to(codes[0], codes.shape), rtol=0, atol=1e-5)
    # the same network without the canonical view: a quarter turn changes the code
    plain = np.stack([est.predict(dihedral(a, j), orient="none")[0] for j in (0, 1)])
    assert np.abs(plain[0] - plain[1]).max() > 1e-3
    # a larger image (resized to 32 px) too
    b = rng.random((64, 64)).cumsum(0).astype(np.float32)
    cb = np.stack([est.predict(dihedral(b, j))[0] for j in range(8)])
    np.testing.assert_allclose(cb, np.broadcast_to(cb[0], cb.shape), rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="orient"):
        est.predict(a, orient="upright")


def test_a_stack_of_network_sized_frames_gets_the_codes_of_its_frames(tiny_model):
    est = Embedder.load(tiny_model)
    rng = np.random.default_rng(6)
    stack = (rng.random((5, 32, 32)) * 40 - 7).astype(np.float64)
    stack[2] = 3.0  # a constant frame: zeros after scaling, as to_inputs gives
    batch = est.predict(stack)
    one = np.stack([est.predict(f)[0] for f in stack])
    np.testing.assert_allclose(batch, one, rtol=1e-5, atol=1e-5)
    inputs, owner = est._inputs(stack, None)
    np.testing.assert_allclose(inputs, np.stack([to_inputs(f, 32)[0] for f in stack]), atol=1e-6)
    np.testing.assert_array_equal(owner, np.arange(5))
