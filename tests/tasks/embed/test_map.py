"""Maps of a collection: sigma-weighted distances, t-SNE, the uniformly separated layout, the HTML page."""
import numpy as np
import pytest

from scopenet.errors import InputError, WriteError
from scopenet.tasks.embed.map import grid_cells, html_map, sigma_distances, tsne, uniform_grid


def test_sigma_distances_reference():
    mu = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 0.0]])
    same = np.ones_like(mu)
    d = sigma_distances(mu, same)  # equal sigmas: weights 1/2, the mean squared difference
    assert d[0, 1] == pytest.approx((1 + 4) / 2) and d[0, 2] == pytest.approx(9 / 2)
    sig = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # dimension 2 certain: it dominates
    w2 = (1 / 0.01) / (1 / 2.01 + 1 / 0.01)
    assert sigma_distances(mu, sig)[0, 1] == pytest.approx((1 - w2) * 1 + w2 * 4)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    with pytest.raises(InputError):
        sigma_distances(mu, np.ones((3, 3)))


@pytest.mark.slow
def test_tsne_separates_clusters_with_and_without_sigma():
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.normal(0, 1, (30, 8)), rng.normal(12, 1, (30, 8))]).astype(np.float32)
    sig = np.abs(rng.normal(1, 0.1, mu.shape)).astype(np.float32)
    for y in (tsne(mu, max_iter=300), tsne(mu, sig, max_iter=300)):
        assert y.shape == (60, 2)
        a, b = y[:30].mean(0), y[30:].mean(0)
        spread = max(y[:30].std(0).max(), y[30:].std(0).max())
        assert np.linalg.norm(a - b) > 3 * spread
    with pytest.raises(InputError):
        tsne(mu[:2])


def test_uniform_grid_spreads_points_and_keeps_clusters_together():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal((0, 0), 0.7, (300, 2)), rng.normal((6, 1), 1.0, (200, 2)),
                        rng.normal((2, 7), 0.5, (100, 2))])
    lab = np.repeat([0, 1, 2], [300, 200, 100])
    y = uniform_grid(x, 25, 25)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    h_before = np.histogram2d(*((x - x.min(0)) / np.ptp(x, 0)).T, bins=4)[0]
    h_after = np.histogram2d(*y.T, bins=4, range=[[0, 1], [0, 1]])[0]
    assert h_after.std() < 0.3 * h_before.std()  # far more even occupancy of the square
    # clusters stay together: almost every point's 5 nearest neighbours are of its cluster
    nn = cKDTree(y).query(y, 6)[1][:, 1:]
    assert np.mean(lab[nn] == lab[:, None]) > 0.9
    with pytest.raises(InputError):
        uniform_grid(x[:, :1])


def test_html_map_is_self_contained(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.random((12, 2))
    thumbs = (rng.random((12, 16, 16)) * 255).astype(np.uint8)
    labels = [f"/data/img{i}.tif" for i in range(12)]
    p = html_map(pts, thumbs, labels, tmp_path / "m.html", groups=["STEM"] * 6 + ["STM"] * 6, grid=3)
    text = p.read_text()
    assert text.count("<circle") == 12 and text.count("data:image/png;base64,") >= 12
    assert "http://" not in text and "https://" not in text and "<script src" not in text
    assert "/data/img7.tif" in text and "STEM" in text and "mousemove" in text
    assert 1 <= len(grid_cells(pts, 3)) <= 9
    with pytest.raises(WriteError):
        html_map(pts, thumbs, labels, tmp_path / "m.html")
    with pytest.raises(InputError):
        html_map(pts, thumbs[:3], labels, tmp_path / "n.html")
